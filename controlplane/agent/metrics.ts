// The agent's Prometheus metrics: kube-proxy's names where the meaning is the same, under ferry_.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

// kube-proxy's buckets for sync durations: 1 ms to about 16 s, doubling.
const SYNC_BUCKETS = Array.from({ length: 15 }, (_, i) => 0.001 * 2 ** i);

/** All metrics of one agent, in their own registry. */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly syncDuration = this.histogram('ferry_sync_proxy_rules_duration_seconds', 'Time a sync of the rules took (compute, render, apply).');
  readonly fullSyncDuration = this.histogram('ferry_sync_full_proxy_rules_duration_seconds', 'Time a full sync took.');
  readonly partialSyncDuration = this.histogram('ferry_sync_partial_proxy_rules_duration_seconds', 'Time an incremental sync took.');
  readonly networkProgrammingDuration = this.histogram('ferry_network_programming_duration_seconds', 'Time from a change reaching the agent to the kernel holding it.');
  readonly lastSync = new Gauge({ name: 'ferry_sync_proxy_rules_last_timestamp_seconds', help: 'When the rules were last synced successfully (Unix time).', registers: [this.registry] });
  readonly lastQueued = new Gauge({ name: 'ferry_sync_proxy_rules_last_queued_timestamp_seconds', help: 'When a change was last queued for a sync (Unix time).', registers: [this.registry] });
  readonly serviceChanges = new Counter({ name: 'ferry_sync_proxy_rules_service_changes_total', help: 'Service ports added, removed or changed, counted per sync.', registers: [this.registry] });
  readonly endpointChanges = new Counter({ name: 'ferry_sync_proxy_rules_endpoint_changes_total', help: 'Endpoints added or removed, counted per sync.', registers: [this.registry] });
  readonly restoreFailures = new Counter({ name: 'ferry_sync_proxy_rules_restore_failures_total', help: 'Syncs the kernel refused (nft -f or iptables-restore failed).', labelNames: ['backend'], registers: [this.registry] });
  readonly objectsRejected = new Counter({ name: 'ferry_objects_rejected_total', help: 'Objects left out because a field was invalid, counted per sync.', labelNames: ['kind'], registers: [this.registry] });
  readonly rules = new Gauge({ name: 'ferry_rules', help: 'Rule lines ferry holds in the kernel, per family.', labelNames: ['backend', 'family'], registers: [this.registry] });
  readonly weightedEndpoints = new Gauge({ name: 'ferry_endpoints_weighted', help: 'Endpoints whose weight differs from the uniform one.', registers: [this.registry] });
  readonly weightUpdates = new Counter({ name: 'ferry_balancer_weight_updates_total', help: 'Times the load-aware balancer changed endpoint weights (each asks for a rule update).', registers: [this.registry] });
  readonly sampleDuration = this.histogram('ferry_balancer_sample_duration_seconds', 'Time one conntrack sample of live connections took.');
  readonly conntrackCleared = new Counter({ name: 'ferry_conntrack_entries_cleared_total', help: 'conntrack deletions run for UDP endpoints that went away.', registers: [this.registry] });

  private histogram(name: string, help: string): Histogram {
    return new Histogram({ name, help, buckets: SYNC_BUCKETS, registers: [this.registry] });
  }
}
