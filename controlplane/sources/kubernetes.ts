// The Kubernetes API as a live source: list/watch informers from @kubernetes/client-node on Services,
// EndpointSlices, this node's Node and ServiceCIDRs. Re-lists on 410 Gone (client-node does), restarts
// after errors with backoff, and keeps the last complete view while the API is away.
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
 * without credentials.
 */
export function loadKubeConfig(path?: string, master?: string): KubeConfig {
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
    const core = config.makeApiClient(CoreV1Api);
    const discovery = config.makeApiClient(DiscoveryV1Api);
    const networking = config.makeApiClient(NetworkingV1Api);
    const watch = new Watch(config);
    const resource = (apiVersion: string, kind: string, path: string, list: () => Promise<KubernetesListObject<KubernetesObject>>, fieldSelector?: string, labelSelector?: string): Resource => {
      const entry: Resource = { apiVersion, kind, listed: false, absent: false, failures: 0, informer: undefined as unknown as ListWatch<KubernetesObject> };
      entry.informer = new ListWatch(path, watch, async () => {
        const result = await list();
        entry.listed = true;
        entry.failures = 0;
        return result;
      }, false, labelSelector, fieldSelector);
      return entry;
    };
    this.resources = [
      resource('v1', 'Service', '/api/v1/services', () => core.listServiceForAllNamespaces({ labelSelector: PROXIED }), undefined, PROXIED),
      resource('discovery.k8s.io/v1', 'EndpointSlice', '/apis/discovery.k8s.io/v1/endpointslices',
        () => discovery.listEndpointSliceForAllNamespaces({ labelSelector: PROXIED }), undefined, PROXIED),
      resource('v1', 'Node', '/api/v1/nodes', () => core.listNode({ fieldSelector: `metadata.name=${node}` }), `metadata.name=${node}`),
      resource('networking.k8s.io/v1', 'ServiceCIDR', '/apis/networking.k8s.io/v1/servicecidrs', () => networking.listServiceCIDR()),
    ];
  }

  /** Resolves once every resource has been listed completely at least once. */
  async start(onChange: (change?: ObjectChange) => void): Promise<void> {
    for (const resource of this.resources) {
      // Objects of a list or watch carry no kind: each is told with the kind it was listed as.
      const tagged = (object: KubernetesObject) => ({ ...object, apiVersion: resource.apiVersion, kind: resource.kind });
      for (const verb of ['add', 'update'] as const) resource.informer.on(verb, (object) => onChange({ type: 'put', object: tagged(object) }));
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
    const status = (error as { code?: number; statusCode?: number }).code ?? (error as { statusCode?: number }).statusCode;
    if (status === 404 && resource.kind === 'ServiceCIDR' && !resource.listed) {
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
