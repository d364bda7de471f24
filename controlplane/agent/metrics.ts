// The agent's Prometheus metrics, defined once. A series kube-proxy has too carries two names: ferry's
// (ferry_*) and kube-proxy's exact one (kubeproxy_*, pkg/proxy/metrics/metrics.go as of v1.34), with its
// type, labels and buckets; `--metrics-naming` picks which the registry exposes. ferry's own series
// (balancer, rules held, rejected objects) keep their ferry_ names in both namings.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BackendName } from '../../dataplane/backend-names.js';
import type { IPFamily } from '../model/types.js';

export const METRICS_NAMINGS = ['ferry', 'kube-proxy'] as const;
export type MetricsNaming = (typeof METRICS_NAMINGS)[number];

/** Every sync programs both families (one nft script, or one restore per family). */
export const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

const linear = (start: number, width: number, count: number) => Array.from({ length: count }, (_, i) => start + width * i);
// kube-proxy's sync buckets: ExponentialBuckets(0.001, 2, 15), 1 ms to about 16 s, doubling.
const SYNC_BUCKETS = Array.from({ length: 15 }, (_, i) => 0.001 * 2 ** i);
// kube-proxy's network programming buckets: MergeBuckets (which puts a 0 first) of 0.25 s and 0.5 s,
// 1 s steps to 59 s, 5 s steps to 115 s, 30 s steps to 5 min.
const PROGRAMMING_BUCKETS = [0, ...linear(0.25, 0.25, 2), ...linear(1, 1, 59), ...linear(60, 5, 12), ...linear(120, 30, 7)];

interface Definition {
  type: 'counter' | 'gauge' | 'histogram';
  /** The name under --metrics-naming=ferry. */
  ferry: string;
  /** kube-proxy's name for the same series, per backend where kube-proxy names it after its mode; none: ferry's name in both namings. */
  kubeProxy?: string | Partial<Record<BackendName, string>>;
  help: string;
  /** Labels in both namings. */
  labels?: readonly string[];
  /** Labels only one naming has: kube-proxy (1.33 on) labels a series with the family of the proxier that recorded it. */
  ferryLabels?: readonly string[];
  kubeProxyLabels?: readonly string[];
  buckets?: readonly number[];
}

const DEFINITIONS = {
  syncDuration: {
    type: 'histogram', ferry: 'ferry_sync_proxy_rules_duration_seconds', kubeProxy: 'kubeproxy_sync_proxy_rules_duration_seconds',
    help: 'Time a sync of the rules took (compute, render, apply).', kubeProxyLabels: ['ip_family'], buckets: SYNC_BUCKETS,
  },
  fullSyncDuration: {
    type: 'histogram', ferry: 'ferry_sync_full_proxy_rules_duration_seconds', kubeProxy: 'kubeproxy_sync_full_proxy_rules_duration_seconds',
    help: 'Time a full sync took.', kubeProxyLabels: ['ip_family'], buckets: SYNC_BUCKETS,
  },
  partialSyncDuration: {
    type: 'histogram', ferry: 'ferry_sync_partial_proxy_rules_duration_seconds', kubeProxy: 'kubeproxy_sync_partial_proxy_rules_duration_seconds',
    help: 'Time an incremental sync took.', kubeProxyLabels: ['ip_family'], buckets: SYNC_BUCKETS,
  },
  networkProgrammingDuration: {
    type: 'histogram', ferry: 'ferry_network_programming_duration_seconds', kubeProxy: 'kubeproxy_network_programming_duration_seconds',
    help: 'Time from an EndpointSlice change (its endpoints.kubernetes.io/last-change-trigger-time) to the kernel holding it.',
    kubeProxyLabels: ['ip_family'], buckets: PROGRAMMING_BUCKETS,
  },
  lastSync: {
    type: 'gauge', ferry: 'ferry_sync_proxy_rules_last_timestamp_seconds', kubeProxy: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
    help: 'When the rules were last synced successfully (Unix time).', kubeProxyLabels: ['ip_family'],
  },
  lastQueued: {
    type: 'gauge', ferry: 'ferry_sync_proxy_rules_last_queued_timestamp_seconds', kubeProxy: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
    help: 'When a change was last queued for a sync (Unix time).', kubeProxyLabels: ['ip_family'],
  },
  serviceChanges: {
    type: 'counter', ferry: 'ferry_sync_proxy_rules_service_changes_total', kubeProxy: 'kubeproxy_sync_proxy_rules_service_changes_total',
    help: 'Service ports added, removed or changed, counted per sync.',
  },
  endpointChanges: {
    type: 'counter', ferry: 'ferry_sync_proxy_rules_endpoint_changes_total', kubeProxy: 'kubeproxy_sync_proxy_rules_endpoint_changes_total',
    help: 'Endpoints added or removed, counted per sync.',
  },
  serviceChangesPending: {
    type: 'gauge', ferry: 'ferry_sync_proxy_rules_service_changes_pending', kubeProxy: 'kubeproxy_sync_proxy_rules_service_changes_pending',
    help: 'Services changed (added, updated, deleted) and not yet synced.',
  },
  endpointChangesPending: {
    type: 'gauge', ferry: 'ferry_sync_proxy_rules_endpoint_changes_pending', kubeProxy: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending',
    help: 'EndpointSlice changes (added, updated, deleted) not yet synced.',
  },
  syncFailures: {
    type: 'counter', ferry: 'ferry_sync_proxy_rules_restore_failures_total',
    kubeProxy: { iptables: 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total', nftables: 'kubeproxy_sync_proxy_rules_nftables_sync_failures_total' },
    help: 'Syncs the kernel refused (nft -f, iptables-restore or bpftool failed), per family the refused rules were for.',
    labels: ['ip_family'], ferryLabels: ['backend'],
  },
  noLocalEndpoints: {
    type: 'gauge', ferry: 'ferry_sync_proxy_rules_no_local_endpoints_total', kubeProxy: 'kubeproxy_sync_proxy_rules_no_local_endpoints_total',
    help: 'Service ports with a Local traffic policy (internal or external) and endpoints, none of them on this node.',
    labels: ['traffic_policy', 'ip_family'],
  },
  healthz: {
    type: 'counter', ferry: 'ferry_proxy_healthz_total', kubeProxy: 'kubeproxy_proxy_healthz_total',
    help: '/healthz answers, per HTTP status.', labels: ['code'],
  },
  livez: {
    type: 'counter', ferry: 'ferry_proxy_livez_total', kubeProxy: 'kubeproxy_proxy_livez_total',
    help: '/livez answers, per HTTP status.', labels: ['code'],
  },
  objectsRejected: {
    type: 'counter', ferry: 'ferry_objects_rejected_total', help: 'Objects left out because a field was invalid, counted per sync.', labels: ['kind'],
  },
  rules: { type: 'gauge', ferry: 'ferry_rules', help: 'Rule lines ferry holds in the kernel, per family.', labels: ['backend', 'family'] },
  weightedEndpoints: { type: 'gauge', ferry: 'ferry_endpoints_weighted', help: 'Endpoints whose weight differs from the uniform one.' },
  weightUpdates: {
    type: 'counter', ferry: 'ferry_balancer_weight_updates_total', help: 'Times the load-aware balancer changed endpoint weights (each asks for a rule update).',
  },
  sampleDuration: {
    type: 'histogram', ferry: 'ferry_balancer_sample_duration_seconds', help: 'Time one conntrack sample of live connections took.', buckets: SYNC_BUCKETS,
  },
  conntrackCleared: { type: 'counter', ferry: 'ferry_conntrack_entries_cleared_total', help: 'conntrack deletions run for UDP endpoints that went away.' },
} as const satisfies Record<string, Definition>;

/**
 * Label values as the agent knows them, every label of both namings. A list records the value once
 * per entry where the naming has that label and once where it does not: a sync of both families is one
 * observation under ferry's names and one per family under kube-proxy's, as its per-family proxiers make.
 */
export type Labels = Record<string, string | readonly string[]>;

type PromMetric = Counter | Gauge | Histogram;

/** One series of the table under the naming in use. */
class Series<M extends PromMetric> {
  constructor(protected readonly metric: M, readonly name: string, readonly labelNames: readonly string[]) {}

  get(): ReturnType<M['get']> {
    return this.metric.get() as ReturnType<M['get']>;
  }

  /** The label sets to record for `labels`: the labels this naming has, one set per combination of values. */
  protected sets(labels: Labels): Record<string, string>[] {
    let sets: Record<string, string>[] = [{}];
    for (const label of this.labelNames) {
      const value = labels[label];
      if (value === undefined) throw new Error(`${this.name}: no value for label ${label}`);
      sets = sets.flatMap((set) => (typeof value === 'string' ? [value] : value).map((entry) => ({ ...set, [label]: entry })));
    }
    return sets;
  }
}

// Called as prom-client's own are: (value) or (labels, value).
type Recorded = [value?: number] | [labels: Labels, value?: number];
const split = (args: Recorded, fallback: number): [Labels, number] => (typeof args[0] === 'object' ? [args[0], args[1] ?? fallback] : [{}, args[0] ?? fallback]);

export class CounterSeries extends Series<Counter> {
  inc(...args: Recorded): void {
    const [labels, value] = split(args, 1);
    for (const set of this.sets(labels)) this.metric.inc(set, value);
  }
}

export class GaugeSeries extends Series<Gauge> {
  set(...args: [value: number] | [labels: Labels, value: number]): void {
    const [labels, value] = split(args, 0);
    for (const set of this.sets(labels)) this.metric.set(set, value);
  }
}

export class HistogramSeries extends Series<Histogram> {
  observe(...args: [value: number] | [labels: Labels, value: number]): void {
    const [labels, value] = split(args, 0);
    for (const set of this.sets(labels)) this.metric.observe(set, value);
  }
}

type SeriesOf<D> = D extends { type: 'counter' } ? CounterSeries : D extends { type: 'gauge' } ? GaugeSeries : HistogramSeries;
type Table = typeof DEFINITIONS;

/** All metrics of one agent, in their own registry, with Node's process metrics. */
export type AgentMetrics = { readonly [K in keyof Table]: SeriesOf<Table[K]> } & { readonly registry: Registry; readonly naming: MetricsNaming };

export interface MetricsOptions {
  naming?: MetricsNaming;
  /** Names the failure counter under kube-proxy's naming (iptables and nftables modes name it apart). */
  backend?: BackendName;
  /** process_* and nodejs_* (prom-client's default metrics); on unless false. */
  processMetrics?: boolean;
}

/** The name and labels a definition has under a naming. */
export function seriesName(definition: Definition, naming: MetricsNaming, backend?: BackendName): { name: string; labels: string[] } {
  const kubeProxy = typeof definition.kubeProxy === 'string' ? definition.kubeProxy : backend && definition.kubeProxy?.[backend];
  const useKubeProxy = naming === 'kube-proxy' && kubeProxy !== undefined;
  return {
    name: useKubeProxy ? kubeProxy : definition.ferry,
    labels: [...(definition.labels ?? []), ...((useKubeProxy ? definition.kubeProxyLabels : definition.ferryLabels) ?? [])],
  };
}

export function createAgentMetrics(options: MetricsOptions = {}): AgentMetrics {
  const naming = options.naming ?? 'ferry';
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  const table: Record<string, Series<PromMetric>> = {};
  for (const [key, definition] of Object.entries(DEFINITIONS) as [string, Definition][]) {
    const { name, labels } = seriesName(definition, naming, options.backend);
    const common = { name, help: definition.help, labelNames: labels, registers: [registry] };
    table[key] = definition.type === 'counter' ? new CounterSeries(new Counter(common), name, labels)
      : definition.type === 'gauge' ? new GaugeSeries(new Gauge(common), name, labels)
      : new HistogramSeries(new Histogram({ ...common, buckets: [...(definition.buckets ?? SYNC_BUCKETS)] }), name, labels);
  }
  const metrics = { ...table, registry, naming } as unknown as AgentMetrics;
  // Zero from the start, so that the first failure is an increase a rate() or an alert sees.
  if (options.backend) metrics.syncFailures.inc({ backend: options.backend, ip_family: FAMILIES }, 0);
  return metrics;
}
