// The Kubernetes API as a live source: list/watch informers from @kubernetes/client-node on Services,
// EndpointSlices, this node's Node and ServiceCIDRs. Re-lists on 410 Gone (client-node does), restarts
// after errors with backoff, and keeps the last complete view while the API is away. The commands'
// one-shot read (readCluster) lists the same resources with the same selectors, once.
import {
  CoreV1Api, DiscoveryV1Api, KubeConfig, ListWatch, NetworkingV1Api, Watch, type KubernetesListObject, type KubernetesObject,
} from '@kubernetes/client-node';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { parse } from 'yaml';
import { SERVICE_PROXY_NAME_LABEL } from '../model/cluster-state.js';
import type { ObjectChange } from '../model/cluster-store.js';
import type { ObjectSource } from './source.js';

const MAX_BACKOFF_MS = 30_000;
// As kube-proxy's informers: Services of another proxy and headless ones are not even listed.
const PROXIED = `!${SERVICE_PROXY_NAME_LABEL},!service.kubernetes.io/headless`;

/** A resource ferry reads from the API, selected as kube-proxy's informers select it. */
interface ApiResource {
  apiVersion: string;
  kind: string;
  path: string;
  list: () => Promise<KubernetesListObject<KubernetesObject>>;
  fieldSelector?: string;
  labelSelector?: string;
}

/**
 * Services, EndpointSlices, Nodes (only `node` when given: an agent needs its own) and ServiceCIDRs,
 * as the agent's informers and the commands' one-shot reads list them.
 */
function apiResources(config: KubeConfig, node?: string): ApiResource[] {
  const core = config.makeApiClient(CoreV1Api);
  const discovery = config.makeApiClient(DiscoveryV1Api);
  const networking = config.makeApiClient(NetworkingV1Api);
  const nodeSelector = node === undefined ? undefined : `metadata.name=${node}`;
  return [
    { apiVersion: 'v1', kind: 'Service', path: '/api/v1/services', labelSelector: PROXIED, list: () => core.listServiceForAllNamespaces({ labelSelector: PROXIED }) },
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', path: '/apis/discovery.k8s.io/v1/endpointslices', labelSelector: PROXIED,
      list: () => discovery.listEndpointSliceForAllNamespaces({ labelSelector: PROXIED }) },
    { apiVersion: 'v1', kind: 'Node', path: '/api/v1/nodes', fieldSelector: nodeSelector, list: () => core.listNode(nodeSelector ? { fieldSelector: nodeSelector } : {}) },
    { apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', path: '/apis/networking.k8s.io/v1/servicecidrs', list: () => networking.listServiceCIDR() },
  ];
}

/** The API does not serve this resource (ServiceCIDR before Kubernetes 1.33): it counts as empty. */
function absentWhenNotFound(kind: string, status: number | undefined): boolean {
  return status === 404 && kind === 'ServiceCIDR';
}

function statusOf(error: unknown): number | undefined {
  return (error as { code?: number; statusCode?: number }).code ?? (error as { statusCode?: number }).statusCode;
}

interface Resource {
  apiVersion: string;
  kind: string;
  informer: ListWatch<KubernetesObject>;
  /** Whether one complete list arrived: the agent must never program a partial view. */
  listed: boolean;
  /** The API does not serve this resource (ServiceCIDR before Kubernetes 1.33): treated as empty. */
  absent: boolean;
  failures: number;
}

/** The kubeconfig is unusable; the message names the file it came from. */
export class KubeConfigError extends Error {}

/**
 * Loads the API's address and credentials as kube-proxy does: an explicit kubeconfig (the flag, or the
 * config's clientConnection.kubeconfig), else $KUBECONFIG or ~/.kube/config, else the in-cluster
 * service account; `master` replaces the server (kube-proxy's --master), and alone means that server
 * without credentials. `context` picks one of the kubeconfig's contexts instead of its current one.
 */
export function loadKubeConfig(path?: string, master?: string, context?: string): KubeConfig {
  const config = new KubeConfig();
  const home = process.env.HOME ? join(process.env.HOME, '.kube', 'config') : undefined;
  const origin = path ?? (process.env.KUBECONFIG || (home && existsSync(home) ? home : undefined));
  if (!origin && !master && !existsSync(SERVICE_ACCOUNT_TOKEN)) {
    throw new KubeConfigError('no kubeconfig: give --kubeconfig, clientConnection.kubeconfig in --config, $KUBECONFIG or ~/.kube/config, or --master (or run in a Pod with a service account)');
  }
  try {
    if (path) config.loadFromFile(path);
    else if (master && !origin) config.loadFromClusterAndUser({ name: 'master', server: master, skipTLSVerify: false }, { name: 'anonymous' });
    else config.loadFromDefault();
    if (origin && !origin.includes(delimiter)) readTokenFiles(config, origin);
    if (context !== undefined) {
      if (!config.getContextObject(context)) {
        throw new Error(`no context ${JSON.stringify(context)} (it has ${config.contexts.map((entry) => JSON.stringify(entry.name)).join(', ') || 'none'})`);
      }
      config.setCurrentContext(context);
    }
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error(`its current context ${JSON.stringify(config.getCurrentContext())} names no cluster`);
    if (master && cluster.server !== master) {
      config.loadFromOptions({
        clusters: config.clusters.map((entry) => (entry.name === cluster.name ? { ...entry, server: master } : entry)),
        users: config.users, contexts: config.contexts, currentContext: config.getCurrentContext(),
      });
    }
    return config;
  } catch (error) {
    const where = origin ? `kubeconfig ${origin}` : master ? `--master ${master}` : 'in-cluster service account';
    throw new KubeConfigError(`${where}: ${(error as Error).message}`);
  }
}

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * client-node reads a user's token file only when spelled `token-file`, but kubeconfigs (kubeadm's
 * kubeconfig.conf for kube-proxy among them) spell it `tokenFile`, as client-go does. Such users get
 * client-node's token-file provider, which re-reads the file (service-account tokens are rotated).
 */
function readTokenFiles(config: KubeConfig, file: string): void {
  const raw = parse(readFileSync(file, 'utf8')) as { users?: { name?: string; user?: { tokenFile?: unknown; token?: unknown } }[] } | null;
  const tokenFiles = new Map((raw?.users ?? []).flatMap((entry) => (typeof entry?.user?.tokenFile === 'string' && !entry.user.token && entry.name
    ? [[entry.name, resolve(dirname(file), entry.user.tokenFile)] as const] : [])));
  if (tokenFiles.size === 0) return;
  config.loadFromOptions({
    clusters: config.clusters, contexts: config.contexts, currentContext: config.getCurrentContext(),
    users: config.users.map((user) => {
      const tokenFile = tokenFiles.get(user.name);
      return tokenFile && !user.token ? { ...user, authProvider: { name: 'tokenFile', config: { tokenFile } } } : user;
    }),
  });
}

export class KubernetesSource implements ObjectSource {
  private readonly resources: Resource[];
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  readonly description: string;

  constructor(config: KubeConfig, node: string, private readonly logger: Logger, private readonly backoffMs = 1000) {
    this.description = `the API server ${config.getCurrentCluster()?.server ?? ''}`.trim();
    const watch = new Watch(config);
    this.resources = apiResources(config, node).map(({ apiVersion, kind, path, list, fieldSelector, labelSelector }) => {
      const entry: Resource = { apiVersion, kind, listed: false, absent: false, failures: 0, informer: undefined as unknown as ListWatch<KubernetesObject> };
      entry.informer = new ListWatch(path, watch, async () => {
        const result = await list();
        entry.listed = true;
        entry.failures = 0;
        return result;
      }, false, labelSelector, fieldSelector);
      return entry;
    });
  }

  /** Resolves once every resource has been listed completely at least once. */
  async start(onChange: (change?: ObjectChange) => void): Promise<void> {
    for (const resource of this.resources) {
      // Objects of a list or watch carry no kind: each is told with the kind it was listed as.
      const tagged = (object: KubernetesObject) => ({ ...object, apiVersion: resource.apiVersion, kind: resource.kind });
      // managedFields (server-side apply's bookkeeping, often most of an object's bytes) is never read:
      // it goes from the object the informer caches as the object arrives (client-go's TransformStripManagedFields).
      const arrived = (object: KubernetesObject) => {
        if (object.metadata?.managedFields) delete object.metadata.managedFields;
        return tagged(object);
      };
      for (const verb of ['add', 'update'] as const) resource.informer.on(verb, (object) => onChange({ type: 'put', object: arrived(object) }));
      resource.informer.on('delete', (object) => onChange({ type: 'delete', object: tagged(object) }));
      resource.informer.on('error', (error: unknown) => this.restart(resource, error));
      void resource.informer.start();
    }
    while (!this.resources.every((resource) => resource.listed || resource.absent)) {
      if (this.stopped) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.logger.info('the API was listed completely');
  }

  objects(): unknown[] {
    return this.resources.flatMap((resource) => resource.informer.list().map((object) => ({ ...object, apiVersion: resource.apiVersion, kind: resource.kind })));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    for (const resource of this.resources) await resource.informer.stop();
  }

  /** A failed list or watch stops client-node's informer: start it again later; its cache stays meanwhile. */
  private restart(resource: Resource, error: unknown): void {
    if (this.stopped) return;
    if (absentWhenNotFound(resource.kind, statusOf(error)) && !resource.listed) {
      resource.absent = true;
      this.logger.info('the API serves no ServiceCIDRs; service-CIDR checks are off');
      return;
    }
    resource.failures += 1;
    const delay = Math.min(this.backoffMs * 2 ** (resource.failures - 1), MAX_BACKOFF_MS);
    this.logger.warn({ kind: resource.kind, err: String((error as Error)?.message ?? error), retryInMs: delay }, 'list/watch failed; keeping the last rules and retrying');
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.stopped) void resource.informer.start();
    }, delay);
    this.timers.add(timer);
  }
}

/** The API could not be read; the message names the server and the resource. */
export class ApiReadError extends Error {}

/** What a command read from a cluster's API. */
export interface ClusterRead {
  /** Services, EndpointSlices, Nodes and ServiceCIDRs, each tagged with its kind as the agent's are. */
  objects: unknown[];
  /** The context's namespace, kubectl's default for -n; undefined when the context names none. */
  namespace: string | undefined;
  /** "the API server URL", for messages. */
  description: string;
}

/**
 * One list of each resource the agent's informers follow, with the same selectors (every Node, though:
 * a command may ask about any of them). ServiceCIDRs the API does not serve are none, as for the agent.
 */
export async function listCluster(config: KubeConfig): Promise<unknown[]> {
  const server = config.getCurrentCluster()?.server ?? '(no server)';
  const resources = apiResources(config);
  // Side by side; a failure is reported for the first resource in this order, whichever failed first.
  const results = await Promise.allSettled(resources.map((resource) => resource.list()));
  const objects: unknown[] = [];
  for (const [i, result] of results.entries()) {
    const resource = resources[i]!;
    if (result.status === 'rejected') {
      if (absentWhenNotFound(resource.kind, statusOf(result.reason))) continue;
      throw new ApiReadError(`the API server ${server}: listing ${resource.kind}s (${resource.path}) failed: ${reasonOf(result.reason)}`);
    }
    for (const object of result.value.items) objects.push({ ...object, apiVersion: resource.apiVersion, kind: resource.kind });
  }
  return objects;
}

/** Loads the kubeconfig as the agent does (`context` picks one of its contexts) and lists the cluster once. */
export async function readCluster(options: { kubeconfig?: string; context?: string; master?: string }): Promise<ClusterRead> {
  const config = loadKubeConfig(options.kubeconfig, options.master, options.context);
  const objects = await listCluster(config);
  const namespace = config.getContextObject(config.getCurrentContext())?.namespace || undefined;
  return { objects, namespace, description: `the API server ${config.getCurrentCluster()?.server ?? ''}`.trim() };
}

/** An API or network error on one line: `HTTP 403: services is forbidden: ...`, or the network's reason. */
function reasonOf(error: unknown): string {
  const status = statusOf(error);
  if (typeof status === 'number') {
    const body = (error as { body?: unknown }).body;
    let message: unknown;
    try {
      message = (typeof body === 'string' ? (JSON.parse(body) as { message?: unknown }) : (body as { message?: unknown } | undefined))?.message;
    } catch {
      message = undefined;
    }
    return `HTTP ${status}${typeof message === 'string' && message ? `: ${message}` : ''}`;
  }
  const text = String((error as Error)?.message ?? error);
  // node-fetch's "request to URL failed, reason: connect ECONNREFUSED 127.0.0.1:1": the reason is the news.
  return (/, reason: (.*)$/s.exec(text)?.[1] ?? text).replace(/\s*\n\s*/g, ' ');
}
