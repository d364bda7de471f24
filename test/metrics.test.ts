// The agent's metrics under both namings, through a fake kernel and a fake clock: what each series
// records, kube-proxy's names, labels and buckets, and what counts as a sync failure.
import test from 'ava';
import { pino } from 'pino';
import { Agent } from '../controlplane/agent/agent.js';
import { createAgentMetrics, type MetricsNaming } from '../controlplane/agent/metrics.js';
import { defaultConfig, type FerryConfig } from '../controlplane/config/kube-proxy-config.js';
import type { ObjectChange } from '../controlplane/model/cluster-store.js';
import type { ObjectSource } from '../controlplane/sources/source.js';
import type { BackendName } from '../dataplane/backend-names.js';
import type { Runner } from '../dataplane/runner.js';
import { ManualClock } from './helpers/manual-clock.js';
import { nodeObject, serviceObject, sliceObject } from './helpers/objects.js';
import { ViewSource } from './helpers/view-source.js';

const START = Date.UTC(2025, 0, 1);
const at = (ms: number) => new Date(START + ms).toISOString();
const TRIGGER = 'endpoints.kubernetes.io/last-change-trigger-time';

/** A slice stamped with a last-change-trigger-time (any string: tests give malformed ones too). */
function stamped<T extends { metadata: Record<string, unknown> }>(slice: T, trigger: string): T {
  return { ...slice, metadata: { ...slice.metadata, annotations: { [TRIGGER]: trigger } } };
}

/** A source of changes as the API reports them: the initial list, then one object at a time. */
class ChangeSource implements ObjectSource {
  private onChange: (change?: ObjectChange) => void = () => {};
  constructor(private readonly initial: unknown[]) {}
  async start(onChange: (change?: ObjectChange) => void) {
    this.onChange = onChange;
    for (const object of this.initial) onChange({ type: 'put', object });
  }
  objects() {
    return [];
  }
  async stop() {}
  put(...objects: unknown[]) {
    for (const object of objects) this.onChange({ type: 'put', object });
  }
  delete(object: unknown) {
    this.onChange({ type: 'delete', object });
  }
}

/** A kernel that takes everything (its listings are empty) unless `refuses` says otherwise. */
function fakeKernel(refuses: (command: string, args: string[]) => boolean = () => false) {
  const kernel = { refusing: false };
  const runner: Runner = {
    run: async (command, args) => (kernel.refusing && refuses(command, args)
      ? { stdout: '', stderr: `${command}: refused`, exitCode: 1 }
      : { stdout: args.includes('-j') ? '{"nftables":[]}' : '', stderr: '', exitCode: 0 }),
  };
  return { kernel, runner };
}

interface Rig {
  agent: Agent;
  clock: ManualClock;
  wall: { now: number };
  /** The registry's samples: `name{label="value",...}` (labels sorted) to value. */
  scrape: () => Promise<Map<string, number>>;
}

async function rig(source: ObjectSource, options: { naming?: MetricsNaming; backend?: BackendName; runner?: Runner; config?: Partial<FerryConfig>; serve?: boolean } = {}): Promise<Rig> {
  const clock = new ManualClock();
  const wall = { now: START };
  const agent = new Agent({
    node: 'node-a', config: { ...defaultConfig, ...options.config }, backend: options.backend ?? 'nftables', source, runner: options.runner ?? fakeKernel().runner,
    logger: pino({ level: 'silent' }), serve: options.serve ?? false, clock, wallClock: () => wall.now, metricsNaming: options.naming, sampleIntervalMs: 3_600_000,
  });
  await agent.start();
  return { agent, clock, wall, scrape: async () => samples(await agent.metrics.registry.metrics()) };
}

/** Prometheus text to `name{labels}` -> value, with the labels sorted so that keys do not depend on their order. */
function samples(text: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels = match[2] ? match[2].split(',').sort().join(',') : '';
    found.set(labels ? `${match[1]}{${labels}}` : match[1]!, Number(match[3]));
  }
  return found;
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
}

/** `# TYPE` lines: series name to type. */
function types(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((match) => [match[1]!, match[2]!]));
}

const KUBE_PROXY_SERIES: Record<string, string> = {
  kubeproxy_sync_proxy_rules_duration_seconds: 'histogram',
  kubeproxy_sync_full_proxy_rules_duration_seconds: 'histogram',
  kubeproxy_sync_partial_proxy_rules_duration_seconds: 'histogram',
  kubeproxy_network_programming_duration_seconds: 'histogram',
  kubeproxy_sync_proxy_rules_last_timestamp_seconds: 'gauge',
  kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds: 'gauge',
  kubeproxy_sync_proxy_rules_service_changes_total: 'counter',
  kubeproxy_sync_proxy_rules_endpoint_changes_total: 'counter',
  kubeproxy_sync_proxy_rules_service_changes_pending: 'gauge',
  kubeproxy_sync_proxy_rules_endpoint_changes_pending: 'gauge',
  kubeproxy_sync_proxy_rules_no_local_endpoints_total: 'gauge',
  kubeproxy_proxy_healthz_total: 'counter',
  kubeproxy_proxy_livez_total: 'counter',
};
const FERRY_ONLY = ['ferry_objects_rejected_total', 'ferry_rules', 'ferry_endpoints_weighted', 'ferry_balancer_weight_updates_total',
  'ferry_balancer_sample_duration_seconds', 'ferry_conntrack_entries_cleared_total'];

test('metrics: kube-proxy naming has kube-proxy\'s names and types, the failure counter its mode\'s name, ferry\'s own series keep ferry_; process metrics in both', async (t) => {
  for (const [backend, failures] of [
    ['nftables', 'kubeproxy_sync_proxy_rules_nftables_sync_failures_total'],
    ['iptables', 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total'],
    ['ebpf', 'ferry_sync_proxy_rules_restore_failures_total'],
  ] as const) {
    const text = await createAgentMetrics({ naming: 'kube-proxy', backend }).registry.metrics();
    const found = types(text);
    for (const [name, type] of Object.entries({ ...KUBE_PROXY_SERIES, [failures]: 'counter' })) t.is(found.get(name), type, `${backend}: ${name}`);
    for (const name of FERRY_ONLY) t.true(found.has(name), `${backend}: ${name} keeps its name`);
    const ours = [...found.keys()].filter((name) => name.startsWith('ferry_'));
    t.deepEqual(ours.sort(), [...FERRY_ONLY, ...(backend === 'ebpf' ? [failures] : [])].sort(), `${backend}: nothing else is ferry_`);
    t.true(found.has('process_cpu_seconds_total') && found.has('process_resident_memory_bytes') && found.has('nodejs_heap_size_used_bytes'));
    // Zero from the start, per family, under kube-proxy's label.
    t.is(samples(text).get(`${failures}{${backend === 'ebpf' ? 'backend="ebpf",' : ''}ip_family="IPv6"}`), 0);
  }
  const ferry = await createAgentMetrics({ backend: 'nftables' }).registry.metrics();
  t.false(/^# TYPE kubeproxy_/m.test(ferry), 'ferry naming has no kubeproxy_ series');
  for (const name of Object.keys(KUBE_PROXY_SERIES)) t.true(types(ferry).has(name.replace(/^kubeproxy_/, 'ferry_')), name);
  t.true(types(ferry).has('process_cpu_seconds_total'));
  t.is(samples(ferry).get('ferry_sync_proxy_rules_restore_failures_total{backend="nftables",ip_family="IPv4"}'), 0);
});

test('metrics: buckets are kube-proxy\'s: 1 ms doubling to 16 s for syncs, 0 to 5 min in kube-proxy\'s steps for network programming', async (t) => {
  const metrics = createAgentMetrics({ naming: 'kube-proxy', processMetrics: false });
  metrics.syncDuration.observe({ ip_family: 'IPv4' }, 0.003);
  metrics.networkProgrammingDuration.observe({ ip_family: 'IPv4' }, 62);
  const text = await metrics.registry.metrics();
  const bounds = (name: string) => [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"`, 'gm'))].map((match) => match[1]);
  t.deepEqual(bounds('kubeproxy_sync_proxy_rules_duration_seconds'), [...Array.from({ length: 15 }, (_, i) => String(0.001 * 2 ** i)), '+Inf']);
  const programming = bounds('kubeproxy_network_programming_duration_seconds');
  t.is(programming.length, 1 + 2 + 59 + 12 + 7 + 1);
  t.deepEqual(programming.slice(0, 5), ['0', '0.25', '0.5', '1', '2']);
  t.deepEqual(programming.slice(61, 66), ['59', '60', '65', '70', '75']);
  t.deepEqual(programming.slice(-4), ['240', '270', '300', '+Inf']);
  const found = samples(text);
  t.is(found.get('kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="60"}'), 0);
  t.is(found.get('kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="65"}'), 1);
});

test('metrics: a sync records its duration, kind, time and changes: once under ferry\'s names, once per family under kube-proxy\'s', async (t) => {
  for (const naming of ['ferry', 'kube-proxy'] as const) {
    const source = new ChangeSource([nodeObject('node-a'), serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }])]);
    const { agent, clock, wall, scrape } = await rig(source, { naming });
    await clock.advance(0);
    wall.now = START + 5_000;
    source.put(sliceObject('web', [{ ip: '10.244.1.9' }, { ip: '10.244.2.9' }]));
    wall.now = START + 6_000;
    await clock.advance(defaultConfig.minSyncPeriodMs);
    t.deepEqual(agent.syncs, { full: 1, partial: 1, unchanged: 0 });
    const found = await scrape();
    const prefix = naming === 'ferry' ? 'ferry' : 'kubeproxy';
    const each = naming === 'ferry' ? [''] : ['{ip_family="IPv4"}', '{ip_family="IPv6"}'];
    for (const family of each) {
      t.is(found.get(`${prefix}_sync_proxy_rules_duration_seconds_count${family}`), 2, `${naming} ${family}`);
      t.is(found.get(`${prefix}_sync_full_proxy_rules_duration_seconds_count${family}`), 1);
      t.is(found.get(`${prefix}_sync_partial_proxy_rules_duration_seconds_count${family}`), 1);
      t.is(found.get(`${prefix}_sync_proxy_rules_last_timestamp_seconds${family}`), (START + 6_000) / 1000);
      t.is(found.get(`${prefix}_sync_proxy_rules_last_queued_timestamp_seconds${family}`), (START + 5_000) / 1000);
    }
    t.is(found.get(`${prefix}_sync_proxy_rules_endpoint_changes_total`), 2, 'one endpoint at the first sync, one more at the second');
    t.is(found.get(`${prefix}_sync_proxy_rules_service_changes_total`), 2);
    await agent.stop();
  }
});

test('metrics: network programming latency runs from each slice change\'s last-change-trigger-time to the sync that programs it; no stamp, no observation', async (t) => {
  const web = (ips: string[]) => sliceObject('web', ips.map((ip) => ({ ip })));
  const web6 = (ips: string[]) => sliceObject('web', ips.map((ip) => ({ ip })));
  const { kernel, runner } = fakeKernel((command, args) => command === 'nft' && args[0] === '-f');
  // A slice changed before the agent started: the initial list's stamp is not measured (kube-proxy's trackerStartTime).
  const source = new ChangeSource([nodeObject('node-a'), serviceObject({ clusterIPs: ['10.96.0.20', 'fd00:96::20'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack' }),
    stamped(web(['10.244.1.9']), at(-60_000))]);
  const { agent, clock, wall, scrape } = await rig(source, { naming: 'kube-proxy', runner });
  const latency = async (family: 'IPv4' | 'IPv6') => {
    const found = await scrape();
    return { count: found.get(`kubeproxy_network_programming_duration_seconds_count{ip_family="${family}"}`) ?? 0, sum: found.get(`kubeproxy_network_programming_duration_seconds_sum{ip_family="${family}"}`) ?? 0 };
  };
  const sync = async (wallMs: number) => {
    wall.now = START + wallMs;
    await clock.advance(defaultConfig.minSyncPeriodMs);
  };
  await clock.advance(0);
  t.deepEqual(await latency('IPv4'), { count: 0, sum: 0 });

  // Stamped 7.25 s in, programmed at 10 s: 2.75 s; the IPv6 slice's change is the IPv6 family's.
  source.put(stamped(web(['10.244.1.9', '10.244.1.10']), '2025-01-01T00:00:07.25Z'), stamped(web6(['fd00:244:0:1::9']), '2025-01-01T01:00:08+01:00'));
  await sync(10_000);
  t.deepEqual(await latency('IPv4'), { count: 1, sum: 2.75 });
  t.deepEqual(await latency('IPv6'), { count: 1, sum: 2 });
  const found = await scrape();
  t.is(found.get('kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="2"}'), 0);
  t.is(found.get('kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="3"}'), 1);

  // No stamp, a malformed one, a Service change: nothing measured, though the rules changed.
  source.put(web(['10.244.1.11']));
  await sync(20_000);
  source.put(stamped(web(['10.244.1.12']), 'yesterday'), stamped(web(['10.244.1.13']), '2025-01-01 00:00:19Z'));
  await sync(30_000);
  source.put(serviceObject({ clusterIPs: ['10.96.0.20', 'fd00:96::20'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack', sessionAffinity: 'ClientIP' }));
  await sync(40_000);
  t.is((await latency('IPv4')).count, 1);

  // Two stamped changes before one sync: two observations (kube-proxy keeps every trigger time).
  source.put(stamped(web(['10.244.1.14']), at(40_500)), stamped(web(['10.244.1.15']), at(41_000)));
  await sync(42_000);
  t.deepEqual(await latency('IPv4'), { count: 3, sum: 2.75 + 1.5 + 1 });

  // A refused sync measures nothing; the sync that gets the change in measures from its stamp.
  kernel.refusing = true;
  source.put(stamped(web(['10.244.1.16']), at(50_000)));
  await sync(51_000);
  t.is((await latency('IPv4')).count, 3);
  kernel.refusing = false;
  wall.now = START + 58_000;
  await clock.advance(defaultConfig.syncPeriodMs);
  t.deepEqual(await latency('IPv4'), { count: 4, sum: 2.75 + 1.5 + 1 + 8 });

  // A slice deleted before the sync drops its Service's trigger times (its stamp dates from an update).
  source.put(stamped(web(['10.244.1.17']), at(59_000)));
  source.delete(web(['10.244.1.17']));
  await sync(60_000);
  t.is((await latency('IPv4')).count, 4);
  await agent.stop();
});

test('metrics: from manifests (no EndpointSlice controller to stamp the change) the time ferry read a changed slice stands in', async (t) => {
  const source = new ViewSource([nodeObject('node-a'), serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }])]);
  const { agent, clock, wall, scrape } = await rig(source);
  await clock.advance(0);
  const count = async () => (await scrape()).get('ferry_network_programming_duration_seconds_count');
  t.is(await count(), 0, 'the first view is no change');
  wall.now = START + 1_000;
  source.change([nodeObject('node-a'), serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }, { ip: '10.244.1.10' }])]);
  wall.now = START + 1_400;
  await clock.advance(defaultConfig.minSyncPeriodMs);
  const found = await scrape();
  t.is(found.get('ferry_network_programming_duration_seconds_count'), 1);
  t.is(found.get('ferry_network_programming_duration_seconds_sum'), 0.4);
  // A Service change alone is not measured, as kube-proxy measures endpoint changes only.
  source.change([nodeObject('node-a'), serviceObject({ sessionAffinity: 'ClientIP' }), ...source.current.slice(2)]);
  await clock.advance(defaultConfig.minSyncPeriodMs);
  t.is(await count(), 1);
  await agent.stop();
});

test('metrics: pending Service and EndpointSlice changes count what was seen and not yet synced, and go to 0 when a sync takes them', async (t) => {
  for (const naming of ['ferry', 'kube-proxy'] as const) {
    const source = new ChangeSource([nodeObject('node-a'), serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }])]);
    const { agent, clock, scrape } = await rig(source, { naming });
    const prefix = naming === 'ferry' ? 'ferry' : 'kubeproxy';
    const pending = async () => {
      const found = await scrape();
      return [found.get(`${prefix}_sync_proxy_rules_service_changes_pending`), found.get(`${prefix}_sync_proxy_rules_endpoint_changes_pending`)];
    };
    t.deepEqual(await pending(), [1, 1], 'the initial list, before the first sync');
    await clock.advance(0);
    t.deepEqual(await pending(), [0, 0]);
    source.put(serviceObject({ sessionAffinity: 'ClientIP' }), serviceObject({ sessionAffinity: 'ClientIP', publishNotReadyAddresses: true }),
      serviceObject({ name: 'other', clusterIPs: ['10.96.0.21'] }));
    source.put(sliceObject('web', [{ ip: '10.244.1.10' }]), sliceObject('web', [{ ip: '10.244.1.11' }]));
    // The same slice again (an update that changes nothing proxied) and a deleted slice.
    source.put(sliceObject('web', [{ ip: '10.244.1.11' }]));
    source.put(sliceObject('other', [{ ip: '10.244.1.12' }]));
    source.delete(sliceObject('other', [{ ip: '10.244.1.12' }]));
    t.deepEqual(await pending(), [2, 4], 'two Services; four slice changes');
    await clock.advance(defaultConfig.minSyncPeriodMs);
    t.deepEqual(await pending(), [0, 0]);
    t.is(agent.syncs.partial, 1);
    await agent.stop();
  }
});

test('metrics: no-local-endpoints counts the Service ports whose Local policy finds endpoints, none on this node', async (t) => {
  const onB = [{ ip: '10.244.2.9', node: 'node-b' as const }];
  const nodePort = (name: string, port: number) => ({ type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: port }], name });
  const source = new ChangeSource([nodeObject('node-a'), nodeObject('node-b'),
    serviceObject({ name: 'internal', clusterIPs: ['10.96.0.21'], internalTrafficPolicy: 'Local' }), sliceObject('internal', onB),
    serviceObject({ clusterIPs: ['10.96.0.22'], ...nodePort('external', 30080) }), sliceObject('external', onB),
    serviceObject({ clusterIPs: ['10.96.0.23'], ...nodePort('both', 30081), internalTrafficPolicy: 'Local' }), sliceObject('both', onB),
    // Not counted: a Local policy with an endpoint here, one without any endpoint (rejected, as kube-proxy), a Cluster policy.
    serviceObject({ clusterIPs: ['10.96.0.24'], ...nodePort('here', 30082), internalTrafficPolicy: 'Local' }), sliceObject('here', [{ ip: '10.244.1.9', node: 'node-a' }]),
    serviceObject({ name: 'empty', clusterIPs: ['10.96.0.25'], internalTrafficPolicy: 'Local' }),
    serviceObject({ name: 'cluster', clusterIPs: ['10.96.0.26'] }), sliceObject('cluster', onB),
  ]);
  const { agent, clock, scrape } = await rig(source, { naming: 'kube-proxy' });
  await clock.advance(0);
  let found = await scrape();
  const count = (policy: string, family: string) => found.get(`kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="${family}",traffic_policy="${policy}"}`);
  t.deepEqual([count('internal', 'IPv4'), count('external', 'IPv4'), count('internal', 'IPv6'), count('external', 'IPv6')], [2, 2, 0, 0]);
  // An endpoint here for one of them: counted no more.
  source.put(sliceObject('both', [...onB, { ip: '10.244.1.10', node: 'node-a' }]));
  await clock.advance(defaultConfig.minSyncPeriodMs);
  found = await scrape();
  t.deepEqual([count('internal', 'IPv4'), count('external', 'IPv4')], [1, 1]);
  await agent.stop();

  const ferry = await rig(new ChangeSource([nodeObject('node-a'), serviceObject({ name: 'internal', internalTrafficPolicy: 'Local' }), sliceObject('internal', onB)]));
  await ferry.clock.advance(0);
  t.is((await ferry.scrape()).get('ferry_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",traffic_policy="internal"}'), 1);
  await ferry.agent.stop();
});

test('metrics: /healthz and /livez answers are counted per HTTP status through the agent\'s health server (loopback, port 0), not the metrics server\'s', async (t) => {
  for (const naming of ['ferry', 'kube-proxy'] as const) {
    const source = new ChangeSource([nodeObject('node-a'), serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }])]);
    const { agent, clock } = await rig(source, { naming, serve: true, config: { healthzBindAddress: '127.0.0.1:0', metricsBindAddress: '127.0.0.1:0' } });
    t.teardown(() => agent.stop());
    const [health, metrics] = agent.serverAddresses().map(({ address, port }) => `http://${address}:${port}`);
    const status = async (url: string) => (await fetch(url)).status;
    t.is(await status(`${health}/healthz`), 503, 'no sync yet');
    t.is(await status(`${health}/livez`), 200);
    await clock.advance(0);
    t.is(await status(`${health}/healthz`), 200);
    t.is(await status(`${health}/healthz`), 200);
    t.is(await status(`${metrics}/healthz`), 200, 'the metrics server answers too, uncounted');
    const found = samples(await (await fetch(`${metrics}/metrics`)).text());
    const prefix = naming === 'ferry' ? 'ferry' : 'kubeproxy';
    t.is(found.get(`${prefix}_proxy_healthz_total{code="503"}`), 1, naming);
    t.is(found.get(`${prefix}_proxy_healthz_total{code="200"}`), 2);
    t.is(found.get(`${prefix}_proxy_livez_total{code="200"}`), 1);
    t.is(found.get(`${prefix}_proxy_livez_total{code="503"}`), undefined);
    t.true(found.has('process_resident_memory_bytes'), 'process metrics are scraped');
    await agent.stop();
  }
});

test('metrics: an invalid object counts as rejected, never as a sync failure; a kernel refusal counts per family; an input that cannot be computed counts as neither', async (t) => {
  const bad = serviceObject({ name: 'bad', clusterIPs: ['10.96.0.99'], ports: [{ name: 'http', port: 0 }] });
  for (const naming of ['ferry', 'kube-proxy'] as const) {
    const { kernel, runner } = fakeKernel((command, args) => command === 'nft' && args[0] === '-f');
    const source = new ChangeSource([nodeObject('node-a'), serviceObject(), bad]);
    const { agent, clock, scrape } = await rig(source, { naming, runner });
    const failures = naming === 'ferry' ? 'ferry_sync_proxy_rules_restore_failures_total{backend="nftables",' : 'kubeproxy_sync_proxy_rules_nftables_sync_failures_total{';
    const counts = async () => {
      const found = await scrape();
      return { rejected: found.get('ferry_objects_rejected_total{kind="Service"}'), IPv4: found.get(`${failures}ip_family="IPv4"}`), IPv6: found.get(`${failures}ip_family="IPv6"}`) };
    };
    await clock.advance(0);
    t.is(agent.syncs.full, 1, 'the valid objects were programmed');
    t.deepEqual(await counts(), { rejected: 1, IPv4: 0, IPv6: 0 }, `${naming}: input error`);
    kernel.refusing = true;
    source.put(serviceObject({ name: 'more', clusterIPs: ['10.96.0.30'] }));
    await clock.advance(defaultConfig.minSyncPeriodMs);
    t.deepEqual(await counts(), { rejected: 1, IPv4: 1, IPv6: 1 }, `${naming}: one nft script holds both families`);
    await agent.stop();
  }

  // iptables restores each family apart: only the refused family counts.
  const { kernel, runner } = fakeKernel((command, args) => [command, ...args].join(' ').includes('ip6tables-restore'));
  const iptables = await rig(new ChangeSource([nodeObject('node-a'), serviceObject()]), { naming: 'kube-proxy', backend: 'iptables', runner });
  kernel.refusing = true;
  await iptables.clock.advance(0);
  await until(() => /the first sync failed/.test(iptables.agent.health().state));
  let found = await iptables.scrape();
  t.is(found.get('kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="IPv6"}'), 1);
  t.is(found.get('kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="IPv4"}'), 0);
  await iptables.agent.stop();

  // No Node object of this name: the sync fails before the kernel is asked anything.
  const lost = await rig(new ChangeSource([nodeObject('node-b'), serviceObject()]));
  await lost.clock.advance(0);
  t.regex(lost.agent.health().state, /the first sync failed: .*node-a/);
  found = await lost.scrape();
  t.is(found.get('ferry_sync_proxy_rules_restore_failures_total{backend="nftables",ip_family="IPv4"}'), 0);
  t.is(found.get('ferry_sync_proxy_rules_restore_failures_total{backend="nftables",ip_family="IPv6"}'), 0);
  await lost.agent.stop();
});
