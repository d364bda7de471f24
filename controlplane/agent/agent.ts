// The node agent: follows a source of cluster objects and keeps the kernel's rules in step, with
// coalesced incremental syncs, periodic full resyncs that repair, health and metrics.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { balance, initialBalanceState, type BalanceConfig, type BalanceState } from '../balance/balance.js';
import { liveConnections } from '../balance/live-connections.js';
import { updateNodeRules } from '../compute/compute.js';
import { endpointKey } from '../../rules/names.js';
import type { NodeRules, ServicePortRules } from '../../rules/node-rules.js';
import { findPort, portKey, serviceOf, splitPortKey, type PortChanges } from '../../rules/port-changes.js';
import { staleUDPFlows } from '../compute/stale-flows.js';
import { computeConfig, type FerryConfig } from '../config/kube-proxy-config.js';
import { describeModelError } from '../model/cluster-state.js';
import { ClusterStore, type TriggerTime } from '../model/cluster-store.js';
import type { Balancing, IPFamily, ModelError } from '../model/types.js';
import type { ObjectSource } from '../sources/source.js';
import { listNatedConnections } from '../../dataplane/conntrack-sample.js';
import { applyChanges, applyIfChanged, balancedSockets, cleanupRules, clearStaleFlows, refreshRules, reassertRules, removeOtherBackends, ruleCounts, startSync, type SyncStart } from '../../dataplane/dataplane.js';
import { render, type BackendOptions, type RenderedRules, type RenderUpdate } from '../../dataplane/render.js';
import type { BackendName } from '../../dataplane/backend-names.js';
import { DataplaneError, type Runner } from '../../dataplane/runner.js';
import { balancerView, type BalancerSample, type BalancerView } from './balancer-view.js';
import { close, healthHandler, HealthCheckPorts, listen, type HealthStatus } from './health.js';
import { createAgentMetrics, FAMILIES, type AgentMetrics, type MetricsNaming } from './metrics.js';
import { SyncScheduler, systemClock, type Clock } from './sync-scheduler.js';

export interface AgentOptions {
  node: string;
  config: FerryConfig;
  backend: BackendName;
  /** Where the eBPF backend's programs go. */
  backendOptions?: BackendOptions;
  source: ObjectSource;
  runner: Runner;
  logger: Logger;
  clock?: Clock;
  /** Serve /healthz, /livez, /metrics and health-check node ports (off in unit tests). */
  serve?: boolean;
  /** Told after every successful sync, once the kernel holds the rules (benchmarks measure with it). */
  onSynced?: (kind: SyncKind, rules: NodeRules) => void;
  /** Endpoint choice for Services without a ferry.dev/balancing annotation (default least-busy). */
  balancing?: Balancing;
  /** How often conntrack is sampled for the balancer. */
  sampleIntervalMs?: number;
  balanceConfig?: BalanceConfig;
  /** The metrics' names: ferry's (ferry_*, the default) or kube-proxy's (kubeproxy_*). */
  metricsNaming?: MetricsNaming;
  /** Wall-clock time in ms since the epoch: the metrics' timestamps and trigger-time latencies (tests fake it). */
  wallClock?: () => number;
}

export type SyncKind = 'full' | 'partial' | 'unchanged';

/** A sync given up because the agent is stopping: neither a failure nor a success. */
class Stopping extends Error {}

/** An invalid object is logged at most this often, so a bad object cannot flood the log. */
const REJECTION_LOG_INTERVAL_MS = 10 * 60_000;

export class Agent {
  readonly metrics: AgentMetrics;
  private readonly scheduler: SyncScheduler;
  private readonly clock: Clock;
  private readonly wallClock: () => number;
  /** Trigger times of changes a failed sync did not program: the next sync that succeeds does. */
  private unprogrammed: TriggerTime[] = [];
  private readonly healthChecks = new HealthCheckPorts();
  private readonly servers: Server[] = [];
  private readonly rejectionsLogged = new Map<string, number>();
  /** The objects the source reported, read, and which Services they changed since the last sync. */
  private readonly store: ClusterStore;
  /** Whether the source reports its objects one change at a time (the API) rather than as whole views (manifests). */
  private reportsChanges = false;
  private previous: { rules: NodeRules; rendered: RenderedRules } | undefined;
  private lastUpdated: Date | undefined;
  /** Clock time of the source's first complete view; undefined while waiting for it. */
  private viewedAt: number | undefined;
  private lastError: string | undefined;
  private stopping = false;
  private balanceState: BalanceState = initialBalanceState;
  private sampler: NodeJS.Timeout | undefined;
  private sampling: Promise<void> = Promise.resolve();
  /** The live connections the balancer last counted, for /balancer. */
  private lastSample: BalancerSample | undefined;
  /** The first sync's preparation, started with the agent; undone at stop if no sync took it up. */
  private starting: SyncStart | undefined;
  /** Counts of syncs by kind, for tests and the log. */
  readonly syncs = { full: 0, partial: 0, unchanged: 0 };

  constructor(private readonly options: AgentOptions) {
    this.clock = options.clock ?? systemClock;
    this.wallClock = options.wallClock ?? Date.now;
    this.metrics = createAgentMetrics({ naming: options.metricsNaming, backend: options.backend });
    this.store = new ClusterStore(options.node, this.wallClock);
    this.scheduler = new SyncScheduler((full) => this.sync(full), {
      minSyncPeriodMs: options.config.minSyncPeriodMs,
      syncPeriodMs: options.config.syncPeriodMs,
      clock: this.clock,
    });
  }

  /**
   * Serves health at once, waits for a complete first view of the cluster, then syncs. Resolves early
   * when stop() is called meanwhile (an API that never answers must not keep the agent from stopping).
   */
  async start(): Promise<void> {
    const { config, logger } = this.options;
    if (this.options.serve !== false) {
      this.servers.push(await listen(config.healthzBindAddress, healthHandler(() => this.health(), {
        counted: (probe, code) => this.metrics[probe].inc({ code: String(code) }),
      })));
      this.servers.push(await listen(config.metricsBindAddress, healthHandler(() => this.health(), {
        metrics: async () => ({ contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() }),
        proxyMode: this.options.backend,
        balancer: () => this.balancer(),
      })));
    }
    const { source } = this.options;
    // The backend gets ready for the first sync (eBPF: loads its programs) while the first view arrives.
    this.starting = startSync(this.options.runner, this.options.backend, this.options.backendOptions);
    await source.start((change) => {
      if (change) {
        this.reportsChanges = true;
        this.store.apply(change);
      } else {
        // A whole view after the first: when ferry read it stands in for its slices' trigger times.
        this.store.replaceAll(source.objects(), this.viewedAt === undefined ? undefined : this.wallClock());
      }
      this.metrics.lastQueued.set({ ip_family: FAMILIES }, this.wallClock() / 1000);
      this.showPending();
      this.scheduler.request();
    });
    if (this.stopping) return;
    // A source of whole views has its first one ready now; one of changes reported each object already.
    if (!this.reportsChanges) this.store.replaceAll(source.objects());
    this.viewedAt = this.clock.now();
    this.scheduler.start();
    // Every sample interval the balancer measures, and the backend covers what appeared (new interfaces).
    this.sampler = setInterval(() => {
      this.sampling = this.sampling.then(() => this.sample()).then(() => this.refresh());
    }, this.options.sampleIntervalMs ?? 2000);
    logger.info({ node: this.options.node, backend: this.options.backend, balancing: this.options.balancing ?? 'least-busy' }, 'agent started');
  }

  /** Stops syncing; the rules stay in the kernel (as kube-proxy leaves them) unless `cleanup`. */
  async stop(options: { cleanup?: boolean } = {}): Promise<void> {
    this.stopping = true;
    clearInterval(this.sampler);
    await this.options.source.stop();
    await this.sampling;
    await this.scheduler.stop();
    await this.starting?.discard();
    await this.healthChecks.close();
    for (const server of this.servers.splice(0)) await close(server);
    if (options.cleanup) await cleanupRules(this.options.runner, this.options.backend, this.options.backendOptions);
    this.options.logger.info({ cleanup: Boolean(options.cleanup) }, 'agent stopped');
  }

  /**
   * Not healthy before the first successful sync, nor when a queued change has waited longer than
   * twice the sync period (kube-proxy's rule); not live only in the second case, so that a liveness
   * probe does not restart an agent that is only waiting for the API server.
   */
  health(): HealthStatus {
    const lastUpdated = this.lastUpdated;
    if (this.viewedAt === undefined) return { healthy: false, live: true, state: `waiting for ${this.options.source.description ?? 'the cluster objects'}`, lastUpdated };
    const since = this.scheduler.pendingSince ?? (lastUpdated ? undefined : this.viewedAt);
    const live = since === undefined || this.clock.now() - since < 2 * this.options.config.syncPeriodMs;
    if (!lastUpdated) return { healthy: false, live, state: this.lastError ? `the first sync failed: ${this.lastError}` : 'waiting for the first sync', lastUpdated };
    return { healthy: live, live, state: live ? 'synced' : `a change has waited longer than twice syncPeriod${this.lastError ? `: ${this.lastError}` : ''}`, lastUpdated };
  }

  /** What /balancer answers: per Service port and endpoint, live connections, load, the synced weight and its share. */
  balancer(): BalancerView {
    return balancerView({
      node: this.options.node, backend: this.options.backend, balancing: this.options.balancing ?? 'least-busy',
      rules: this.previous?.rules, syncedAt: this.lastUpdated, state: this.balanceState, sample: this.lastSample,
    });
  }

  /** Where the HTTP servers listen (the health server first), once started with `serve`: for tests that bind port 0. */
  serverAddresses(): AddressInfo[] {
    return this.servers.map((server) => server.address() as AddressInfo);
  }

  private async sync(full: boolean): Promise<void> {
    const { backend, runner, logger } = this.options;
    const started = this.clock.now();
    let programmed: TriggerTime[] = [];
    try {
      // A partial sync computes and renders the Services that changed; a full one everything, from scratch.
      const { index, services, errors, warnings, triggers } = this.store.take();
      this.showPending();
      programmed = [...this.unprogrammed.splice(0), ...triggers];
      this.logModelMessages(errors, warnings);
      await this.checkpoint();
      const previous = full ? undefined : this.previous;
      const { rules, changed } = updateNodeRules(previous?.rules, index, this.options.node,
        { ...computeConfig(this.options.config, backend), balancing: this.options.balancing }, this.balanceState.weights, services);
      await this.checkpoint();
      const { rendered, kind } = this.previous
        ? await this.syncOver(this.previous.rendered, rules, full, previous && changed !== 'all' ? { previous: previous.rendered, changed } : undefined)
        : await this.syncFirst(rules);
      // Taking over from another backend (a restart with another mode): its rules go once ours are in.
      if (!this.previous) await removeOtherBackends(runner, backend, this.options.backendOptions);
      this.syncs[kind] += 1;
      const stale = staleUDPFlows(this.previous?.rules, rules, changed);
      await clearStaleFlows(runner, stale, rendered);
      this.metrics.conntrackCleared.inc(stale.length);
      if (this.options.serve !== false) await this.healthChecks.update(rules.healthChecks);
      this.record(rules, rendered, changed, kind, started, programmed, index.services.size);
      this.previous = { rules, rendered };
      this.lastError = undefined;
      this.options.onSynced?.(kind, rules);
    } catch (error) {
      // kube-proxy loses the trigger times of a sync whose restore fails; kept, they are measured when
      // the kernel finally holds the change, so a refusing kernel shows as latency, not as silence.
      this.unprogrammed.unshift(...programmed);
      if (error instanceof Stopping) return;
      this.lastError = (error as Error).message;
      // Only what the kernel (or its tools) refused is a sync failure; an invalid object was left out
      // and counted in objectsRejected, and an input that cannot be computed (no Node of this name) is
      // the log's and /healthz's to tell.
      if (error instanceof DataplaneError) this.metrics.syncFailures.inc({ backend, ip_family: failedFamilies(error) });
      logger.error({ err: (error as Error).message, full }, 'sync failed; the previous rules stay, retrying with a full sync');
      throw error;
    }
  }

  private showPending(): void {
    const { services, endpointSlices } = this.store.pending();
    this.metrics.serviceChangesPending.set(services);
    this.metrics.endpointChangesPending.set(endpointSlices);
  }

  /**
   * Lets a signal that arrived during a long stretch of computing be handled (signal handlers run on
   * the event loop), and gives the sync up before it writes anything once the agent is stopping.
   */
  private async checkpoint(): Promise<void> {
    await setImmediate();
    if (this.stopping) throw new Stopping();
  }

  /**
   * At start: adopts rules that already match (a restart) without writing, otherwise replaces them
   * atomically; nftables decides from the stamp of the last write (applyIfChanged), so a start does not
   * list the rules, and into a kernel without ferry's tables it writes them as it renders them.
   */
  private async syncFirst(rules: NodeRules): Promise<{ rendered: RenderedRules; kind: SyncKind }> {
    const { changed, rendered } = await applyIfChanged(this.options.runner, rules, this.options.backend, { backend: this.options.backendOptions });
    return { rendered, kind: changed ? 'full' : 'unchanged' };
  }

  /**
   * After the first sync: writes what changed since `last` (rendering only the changed ports when
   * `update` says which); a full sync re-asserts every rule without reading them back, which also
   * repairs what someone changed behind a stamp.
   */
  private async syncOver(last: RenderedRules, rules: NodeRules, full: boolean, update: RenderUpdate | undefined): Promise<{ rendered: RenderedRules; kind: SyncKind }> {
    const { runner, backend, backendOptions } = this.options;
    const rendered = render(rules, backend, backendOptions, update);
    await this.checkpoint();
    if (!full) return { rendered, kind: await applyChanges(runner, last, rendered) };
    await reassertRules(runner, rendered);
    return { rendered, kind: 'full' };
  }

  private record(rules: NodeRules, rendered: RenderedRules, changed: PortChanges, kind: SyncKind, started: number, programmed: TriggerTime[], services: number): void {
    const seconds = (this.clock.now() - started) / 1000;
    // One sync programs every family: one observation per family under kube-proxy's names (one proxier each there).
    const families = { ip_family: rules.families.map((family) => family.family) };
    this.metrics.syncDuration.observe(families, seconds);
    (kind === 'partial' ? this.metrics.partialSyncDuration : this.metrics.fullSyncDuration).observe(families, seconds);
    // Network programming latency as kube-proxy measures it: from each EndpointSlice change's
    // last-change-trigger-time (the EndpointSlice controller's stamp of the Pod or Service change behind
    // it) to now, one observation per change. A slice without a stamp gives none, and neither does a
    // Service change: kube-proxy measures only what the controller stamped, and ferry hearing of a change
    // says nothing of how long the API and the controller took. (Manifests have no controller: there
    // the time ferry read the file stands in, see ClusterStore.)
    const now = this.wallClock();
    for (const { family, time } of programmed) this.metrics.networkProgrammingDuration.observe({ ip_family: family }, (now - time) / 1000);
    this.metrics.lastSync.set(families, now / 1000);
    for (const [family, counts] of noLocalEndpoints(rules)) {
      for (const [policy, count] of Object.entries(counts)) this.metrics.noLocalEndpoints.set({ traffic_policy: policy, ip_family: family }, count);
    }
    this.lastUpdated = new Date();
    const { serviceChanges, endpointChanges } = countChanges(this.previous?.rules, rules, changed);
    this.metrics.serviceChanges.inc(serviceChanges);
    this.metrics.endpointChanges.inc(endpointChanges);
    let rulesHeld = 0;
    for (const { family, rules: count } of ruleCounts(rendered)) {
      this.metrics.rules.set({ backend: rendered.backend, family }, count);
      rulesHeld += count;
    }
    // One line per sync at the default level, as an operator reads the log: what kind, how much, how long.
    const servicePorts = rules.families.reduce((sum, family) => sum + family.servicePorts.length, 0);
    this.options.logger.info({ kind, services, servicePorts, portsChanged: serviceChanges, endpointsChanged: endpointChanges, rules: rulesHeld, ms: Math.round(seconds * 1000) }, 'synced');
  }

  /**
   * One balancer step: count live connections per endpoint in conntrack, fold them into the weights,
   * and ask for a sync when the published weights change. Only Services that balance by load are
   * affected; compute ignores the weights of uniform ones.
   */
  private async sample(): Promise<void> {
    if (!this.previous) return;
    const { rules, rendered } = this.previous;
    const started = this.clock.now();
    try {
      const counts = liveConnections(await listNatedConnections(this.options.runner));
      // What the backend balanced without a NAT entry (eBPF's sockets) counts as much.
      for (const { protocol, ip, port, connections } of await balancedSockets(this.options.runner, rendered)) {
        const key = endpointKey(protocol, ip, port);
        counts.set(key, (counts.get(key) ?? 0) + connections);
      }
      // Each group's endpoint keys, and the Services each key belongs to (a changed weight changes those).
      const groups: string[][] = [];
      const owners = new Map<string, Set<string>>();
      let weighted = 0;
      for (const family of rules.families) {
        for (const port of family.servicePorts) {
          for (const group of [port.cluster, port.local]) {
            if (!group) continue;
            const keys = group.endpoints.map((endpoint) => endpointKey(port.protocol, endpoint.ip, endpoint.port));
            groups.push(keys);
            for (const key of keys) owners.set(key, (owners.get(key) ?? new Set()).add(serviceOf(port.id)));
            if (group.endpoints.some((endpoint) => endpoint.weight !== group.endpoints[0]!.weight)) weighted += group.endpoints.length;
          }
        }
      }
      this.metrics.weightedEndpoints.set(weighted);
      const samples = new Map(groups.flat().map((key) => [key, counts.get(key) ?? 0]));
      this.lastSample = { at: this.wallClock(), connections: samples };
      const next = balance(samples, groups, this.balanceState, this.clock.now(), this.options.balanceConfig);
      const before = this.balanceState.weights;
      this.balanceState = next;
      this.metrics.sampleDuration.observe((this.clock.now() - started) / 1000);
      if (next.changed) {
        this.metrics.weightUpdates.inc();
        this.options.logger.debug({ weights: Object.fromEntries(next.weights) }, 'endpoint weights changed');
        for (const key of new Set([...before.keys(), ...next.weights.keys()])) {
          if (before.get(key) !== next.weights.get(key)) this.store.touch(owners.get(key) ?? []);
        }
        this.scheduler.request();
      }
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'sampling conntrack failed; weights unchanged');
    }
  }

  /** Lets the backend cover what appeared since the last sync; a failure is logged and tried again at the next look. */
  private async refresh(): Promise<void> {
    if (!this.previous || this.stopping) return;
    try {
      for (const done of await refreshRules(this.options.runner, this.previous.rendered)) this.options.logger.info(done);
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'covering new interfaces failed; trying again at the next look');
    }
  }

  /** Skipped objects are counted and logged, warnings (the object was still read) only logged; each at most every 10 minutes. */
  private logModelMessages(errors: ModelError[], warnings: ModelError[]): void {
    for (const error of errors) this.metrics.objectsRejected.inc({ kind: error.kind });
    for (const [message, text] of [...errors.map((error) => [error, describeModelError(error)] as const), ...warnings.map((warning) => [warning, `${warning.kind} ${warning.object}: ${warning.message}`] as const)]) {
      const last = this.rejectionsLogged.get(text);
      if (last !== undefined && this.clock.now() - last < REJECTION_LOG_INTERVAL_MS) continue;
      this.rejectionsLogged.set(text, this.clock.now());
      this.options.logger.warn({ kind: message.kind, object: message.object, field: message.field }, text);
    }
  }

}

/** The families whose rules a refusing command was writing: iptables' restore is per family, an nft script holds both. */
function failedFamilies(error: DataplaneError): readonly IPFamily[] {
  if (/\bip6tables-/.test(error.command)) return ['IPv6'];
  if (/\biptables-/.test(error.command)) return ['IPv4'];
  return FAMILIES;
}

/**
 * Service ports per family whose Local traffic policy finds no endpoint on this node though the Service
 * has endpoints (kube-proxy's serviceNoLocalEndpointsTotalInternal and ...External): their traffic is
 * dropped here. A port without any endpoint is rejected, not counted, as in kube-proxy.
 */
function noLocalEndpoints(rules: NodeRules): Map<IPFamily, { internal: number; external: number }> {
  return new Map(rules.families.map((family) => [family.family, {
    internal: family.servicePorts.filter((port) => port.internal === 'drop').length,
    external: family.servicePorts.filter((port) => port.external?.policy === 'Local' && port.external.verdict === 'drop').length,
  }]));
}

/** Service ports whose rules changed in a sync, and endpoints that came or went in them, for the change metrics. */
function countChanges(before: NodeRules | undefined, after: NodeRules, changed: PortChanges): { serviceChanges: number; endpointChanges: number } {
  // Within one port, an endpoint is its key (the cluster and local groups may both hold it).
  const endpoints = (port: ServicePortRules | undefined) => new Set(port ? [...(port.cluster?.endpoints ?? []), ...(port.local?.endpoints ?? [])].map((endpoint) => endpointKey(port.protocol, endpoint.ip, endpoint.port)) : []);
  // The first sync: every port and endpoint is new (without looking each port up in nothing).
  if (!before) {
    const ports = after.families.flatMap((family) => family.servicePorts);
    return { serviceChanges: ports.length, endpointChanges: ports.reduce((sum, port) => sum + endpoints(port).size, 0) };
  }
  const keys = changed === 'all'
    ? new Set([before, after].flatMap((rules) => rules?.families.flatMap((family) => family.servicePorts.map((port) => portKey(family.family, port.id))) ?? []))
    : changed;
  let serviceChanges = 0;
  let endpointChanges = 0;
  for (const key of keys) {
    const { family, id } = splitPortKey(key);
    const find = (rules: NodeRules | undefined) => {
      const rulesOfFamily = rules?.families.find((candidate) => candidate.family === family);
      return rulesOfFamily && findPort(rulesOfFamily, id);
    };
    const [old, port] = [find(before), find(after)];
    if (isDeepStrictEqual(old, port)) continue;
    serviceChanges += 1;
    const [was, is] = [endpoints(old), endpoints(port)];
    endpointChanges += [...was].filter((endpoint) => !is.has(endpoint)).length + [...is].filter((endpoint) => !was.has(endpoint)).length;
  }
  return { serviceChanges, endpointChanges };
}
