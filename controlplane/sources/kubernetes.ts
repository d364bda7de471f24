// The Kubernetes API as a live source: list/watch informers from @kubernetes/client-node on Services,
// EndpointSlices, this node's Node and ServiceCIDRs. Re-lists on 410 Gone (client-node does), restarts
// after errors with backoff, and keeps the last complete view while the API is away.
import {
  CoreV1Api, DiscoveryV1Api, KubeConfig, ListWatch, NetworkingV1Api, Watch, type KubernetesListObject, type KubernetesObject,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ObjectSource } from './source.js';

const MAX_BACKOFF_MS = 30_000;

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

/** Loads a kubeconfig as kubectl does: an explicit file, else $KUBECONFIG or ~/.kube/config, else in-cluster. */
export function loadKubeConfig(path?: string): KubeConfig {
  const config = new KubeConfig();
  if (path) config.loadFromFile(path);
  else config.loadFromDefault();
  return config;
}

export class KubernetesSource implements ObjectSource {
  private readonly resources: Resource[];
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(config: KubeConfig, node: string, private readonly logger: Logger, private readonly backoffMs = 1000) {
    const core = config.makeApiClient(CoreV1Api);
    const discovery = config.makeApiClient(DiscoveryV1Api);
    const networking = config.makeApiClient(NetworkingV1Api);
    const watch = new Watch(config);
    const resource = (apiVersion: string, kind: string, path: string, list: () => Promise<KubernetesListObject<KubernetesObject>>, fieldSelector?: string): Resource => {
      const entry: Resource = { apiVersion, kind, listed: false, absent: false, failures: 0, informer: undefined as unknown as ListWatch<KubernetesObject> };
      entry.informer = new ListWatch(path, watch, async () => {
        const result = await list();
        entry.listed = true;
        entry.failures = 0;
        return result;
      }, false, undefined, fieldSelector);
      return entry;
    };
    this.resources = [
      resource('v1', 'Service', '/api/v1/services', () => core.listServiceForAllNamespaces()),
      resource('discovery.k8s.io/v1', 'EndpointSlice', '/apis/discovery.k8s.io/v1/endpointslices', () => discovery.listEndpointSliceForAllNamespaces()),
      resource('v1', 'Node', '/api/v1/nodes', () => core.listNode({ fieldSelector: `metadata.name=${node}` }), `metadata.name=${node}`),
      resource('networking.k8s.io/v1', 'ServiceCIDR', '/apis/networking.k8s.io/v1/servicecidrs', () => networking.listServiceCIDR()),
    ];
  }

  /** Resolves once every resource has been listed completely at least once. */
  async start(onChange: () => void): Promise<void> {
    for (const resource of this.resources) {
      for (const verb of ['add', 'update', 'delete'] as const) resource.informer.on(verb, () => onChange());
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
