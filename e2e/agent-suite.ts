// The agent's own behaviour in the namespace cluster: restart under traffic, a broken manifest, UDP
// conntrack cleanup, health-check node ports, /healthz and /metrics. One cluster per backend.
import { rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import type { BalancerPort, BalancerView } from '../controlplane/agent/balancer-view.js';
import type { FrontendRecord } from '../controlplane/cli/services-command.js';
import { endpointKey } from '../rules/names.js';
import { integerWeights } from '../controlplane/compute/weights.js';
import { packageRoot } from '../controlplane/package-root.js';
import { binomialLowerQuantile, hoeffdingUpperTail } from '../test/helpers/statistics.js';
import { Cluster, isSyncOutcome, type AgentLogEntry, type NamespaceHost } from './cluster.js';
import type { ProbeResult } from './driver.js';
import type { BackendName } from '../dataplane/backend-names.js';
import { podObjects } from './manifests.js';
import { clusterSpec } from './scenarios.js';

const HTTP = { name: 'http', port: 8080 };
const DNS = { name: 'dns', port: 8080, protocol: 'UDP' };

function service(name: string, clusterIP: string, spec: Record<string, unknown> = {}): object {
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' },
    spec: {
      clusterIP, clusterIPs: [clusterIP],
      ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }, { name: 'dns', port: 53, protocol: 'UDP', targetPort: 8080 }],
      ...spec,
    },
  };
}

/** GETs a URL from inside a namespace: status and parsed JSON (or text) body. */
async function get(host: NamespaceHost, url: string): Promise<{ status: number; body: string }> {
  const script = 'fetch(process.argv[1]).then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })))';
  return JSON.parse(await host.ns.run([process.execPath, '-e', script, url])) as { status: number; body: string };
}

/** Prometheus text format to name{labels} -> value. */
export function parseMetrics(text: string): Map<string, number> {
  const metrics = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match) metrics.set(match[1]!, Number(match[2]));
  }
  return metrics;
}

export function registerAgentTests(backend: BackendName): void {
  let cluster: Cluster;
  test.before(async () => {
    cluster = await Cluster.create(clusterSpec);
  });
  test.after.always(async () => {
    await cluster?.destroy();
  });
  const pod = (name: string) => cluster.pods.get(name)!;
  const node = (name: string) => cluster.nodes.get(name)!;
  /** node-a's agent balances by load for one test, and goes back to uniform (as `settle` expects) after it; from its first sync on. */
  const leastBusyNodeA = async (t: ExecutionContext) => {
    const nodeA = node('node-a');
    await cluster.stopAgent(nodeA);
    const restart = await cluster.logOffset(nodeA);
    cluster.startAgent(nodeA, backend, 'least-busy');
    t.teardown(async () => {
      await cluster.stopAgent(nodeA);
      cluster.startAgent(nodeA, backend);
      await cluster.settle(backend);
    });
    await cluster.waitForLog(nodeA, isSyncOutcome, { after: restart });
    return { nodeA, restart };
  };
  const servers = (results: ProbeResult[]) => [...new Set(results.map((result) => result.server ?? `failed: ${result.error}`))].sort();

  test.serial(`kernel: agent ${backend}: a restarted agent adopts its rules: no connection fails and its first sync writes nothing`, async (t) => {
    await cluster.apply([service('web', '10.96.3.10'), ...cluster.endpointSlices('web', ['web-1', 'web-2', 'web-3'], [HTTP, DNS])], backend);
    // Connections keep coming from before the agent stops until after the restarted one has synced.
    const traffic = cluster.flow(pod('client-a'), { proto: 'tcp', host: '10.96.3.10', port: 80, intervalMs: 20 });
    t.teardown(() => traffic.stop());
    await traffic.next();
    await cluster.stopAgent(node('node-a'));
    t.is(await cluster.ferry(node('node-a'), ['diff', '--node', 'node-a', '-f', cluster.manifestsPath, '--backend', backend, '--config', cluster.configPath]).then((r) => r.exitCode), 0, 'SIGTERM left the rules in place');
    const restart = await cluster.logOffset(node('node-a'));
    cluster.startAgent(node('node-a'), backend);
    const first = await cluster.waitForLog(node('node-a'), isSyncOutcome, { after: restart });
    await traffic.next(() => true, { from: traffic.results.length });
    const results = await traffic.stop();
    t.deepEqual(results.filter((result) => !result.ok), [], `no connection failed across the restart (${results.length} connections)`);
    t.is(first.entry.kind, 'unchanged', `the first sync after the restart adopted the rules: ${JSON.stringify(first.entry)}`);
  });

  test.serial(`kernel: agent ${backend}: a manifest that does not parse keeps the last good rules`, async (t) => {
    const broken = join(dirname(cluster.manifestsPath), 'broken.yaml');
    const offsets = await cluster.logOffsets();
    await writeFile(broken, 'kind: [unclosed\n');
    t.teardown(() => rm(broken, { force: true }));
    for (const host of cluster.nodes.values()) {
      await cluster.waitForLog(host, (entry) => entry.msg === 'manifests did not parse; keeping the last good state', { after: offsets.get(host.name)! });
    }
    await cluster.settle(backend);
    const results = await cluster.probe(pod('client-b'), { proto: 'tcp', host: '10.96.3.10', port: 80, count: 10 });
    t.deepEqual(results.filter((result) => !result.ok), []);
  });

  test.serial(`kernel: agent ${backend}: a UDP flow to an endpoint that went away moves to a live one (conntrack cleared; ebpf: the socket aborted)`, async (t) => {
    await cluster.apply([service('udp', '10.96.3.20'), ...cluster.endpointSlices('udp', ['web-1'], [HTTP, DNS])], backend);
    // One socket, one conntrack flow: without the cleanup it would keep going to web-1, which still answers.
    const flow = cluster.flow(pod('client-a'), { proto: 'udp', host: '10.96.3.20', port: 53, intervalMs: 100, reuse: true });
    t.teardown(() => flow.stop());
    const first = await flow.next();
    await cluster.apply([service('udp', '10.96.3.20'), ...cluster.endpointSlices('udp', ['web-2'], [HTTP, DNS])], backend);
    // The agent clears the flow in the sync that changed the rules; 20 datagrams (2 s) later is plenty.
    const moved = await flow.next((result) => result.server === pod('web-2').ipv4, { from: flow.results.length, within: 20 });
    t.is(first!.server, pod('web-1').ipv4);
    t.truthy(moved, `the flow moved: ${servers(flow.results).join(', ')}`);
  });

  test.serial(`kernel: agent ${backend}: health-check node ports answer 200 where endpoints are local and 503 elsewhere, following the endpoints`, async (t) => {
    const local = (where: string) => [{
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'hc', namespace: 'default' },
      spec: {
        type: 'LoadBalancer', clusterIP: '10.96.3.30', clusterIPs: ['10.96.3.30'], externalTrafficPolicy: 'Local', healthCheckNodePort: 32100,
        ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30300 }],
      },
    }, ...cluster.endpointSlices('hc', [where], [HTTP])];
    const external = cluster.externals[0]!;
    // The agent moves its health-check servers in the sync that changes the rules, just before it logs
    // that sync; `settle` can see the kernel's rules a moment earlier, so ask until the port answers as
    // expected (or 30 s have passed).
    const check = async (target: string, status: number) => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const answer = await get(external, `http://${node(target).ipv4}:32100/`);
        if (answer.status === status || Date.now() > deadline) return answer;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    };
    await cluster.apply(local('web-1'), backend);
    const onA = await check('node-a', 200);
    t.is(onA.status, 200);
    t.deepEqual(JSON.parse(onA.body), { service: { namespace: 'default', name: 'hc' }, localEndpoints: 1, serviceProxyHealthy: true });
    t.is((await check('node-b', 503)).status, 503);
    await cluster.apply(local('web-2'), backend);
    t.is((await check('node-a', 503)).status, 503);
    t.is((await check('node-b', 200)).status, 200);
  });

  test.serial(`kernel: agent ${backend}: manifests with Pods and no EndpointSlices: endpoints come from the selector`, async (t) => {
    await cluster.apply([
      service('selected', '10.96.3.50', { selector: { app: 'selected' }, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'web' }] }),
      ...podObjects(cluster.pods, ['web-1', 'web-3'], { app: 'selected' }, { name: 'web', containerPort: 8080 }),
    ], backend);
    const results = await cluster.probe(pod('client-b'), { proto: 'tcp', host: '10.96.3.50', port: 80, count: 30 });
    t.deepEqual(servers(results), [pod('web-1').ipv4, pod('web-3').ipv4].sort());
  });

  test.serial(`kernel: agent ${backend}: /healthz and /metrics answer with kube-proxy's metrics under ferry_`, async (t) => {
    const host = node('node-a');
    const health = await get(host, 'http://127.0.0.1:10256/healthz');
    t.is(health.status, 200);
    t.truthy(Date.parse((JSON.parse(health.body) as { lastUpdated: string }).lastUpdated));
    t.is((await get(host, 'http://127.0.0.1:10256/livez')).status, 200);
    const metrics = parseMetrics((await get(host, 'http://127.0.0.1:10249/metrics')).body);
    t.true(metrics.get('ferry_sync_proxy_rules_duration_seconds_count')! >= 3);
    t.true(metrics.get('ferry_sync_partial_proxy_rules_duration_seconds_count')! >= 1, 'changes were synced incrementally');
    t.true(metrics.get('ferry_network_programming_duration_seconds_count')! >= 1);
    t.true(metrics.get('ferry_sync_proxy_rules_endpoint_changes_total')! >= 1);
    t.true(metrics.get('ferry_sync_proxy_rules_last_timestamp_seconds')! > Date.now() / 1000 - 120);
    t.true(metrics.get('ferry_conntrack_entries_cleared_total')! >= 1);
    // eBPF counts map entries (a frontend, a slot), far fewer than the rule backends' rules.
    t.true([...metrics.entries()].some(([name, value]) => name.startsWith('ferry_rules{') && value > (backend === 'ebpf' ? 3 : 10)));
    // Per family, from 0: every series is there and none counted a failure.
    const failures = [...metrics].filter(([name]) => name.startsWith('ferry_sync_proxy_rules_restore_failures_total{') && name.includes(`backend="${backend}"`));
    t.true(failures.length > 0 && failures.every(([, value]) => value === 0), JSON.stringify(failures));
    const mode = await get(host, 'http://127.0.0.1:10249/proxyMode');
    t.deepEqual([mode.status, mode.body], [200, backend], 'kube-proxy\'s /proxyMode names the backend');
  });

  // Only eBPF's rules are on interfaces: an interface that appears must get the packet program, though
  // nothing in the cluster changes and so no sync comes.
  if (backend === 'ebpf') test.serial('kernel: agent ebpf: an interface that appears gets the packet program within seconds, with no sync', async (t) => {
    const host = node('node-a');
    const after = await cluster.logOffset(host);
    await host.ns.run(['ip', 'link', 'add', 'fnew0', 'type', 'veth', 'peer', 'name', 'fnew1']);
    t.teardown(() => host.ns.run(['ip', 'link', 'del', 'fnew0']).then(() => undefined, () => undefined));
    await cluster.waitForLog(host, (entry) => /attached to fnew0,/.test(entry.msg), { after });
    const [net] = JSON.parse(await host.ns.run(['bpftool', '-j', 'net', 'show'])) as Array<{ tc: Array<{ devname: string; name: string }> }>;
    t.true(net!.tc.some((filter) => filter.devname === 'fnew0' && filter.name.startsWith('ferry_ingress')), JSON.stringify(net!.tc));
  });

  // eBPF: the pods' connections make no conntrack NAT entry; its sock_ops program counts them instead.
  test.serial(`kernel: agent ${backend}: the balancer gives a made-busy endpoint less of the new traffic`, async (t) => {
    // Waits on events only (an agent's start, weights in the kernel, 1,000 connections under them, the
    // uniform agent back); a busy 2-core machine has made that take two minutes.
    t.timeout(240_000);
    // Port 9090 on three pods: web-1 and web-2 serve a connection in 2 ms, web-3 in 100 ms (10 a
    // second). A uniform third of RATE is over three times web-3's capacity, and stays above it even if
    // a busy machine lets the client reach only half of RATE, so connections pile up at web-3 (its
    // server greets at once and closes when it has served them) and node-a's agent must lower its weight.
    for (const [name, serialMs] of [['web-1', 2], ['web-2', 2], ['web-3', 100]] as const) await cluster.startServer(pod(name), [9090], { serialMs });
    await cluster.apply([service('busy', '10.96.3.40', { ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 9090 }] }),
      ...cluster.endpointSlices('busy', ['web-1', 'web-2', 'web-3'], [{ name: 'http', port: 9090 }])], backend);
    const { nodeA, restart } = await leastBusyNodeA(t);

    const RATE = 150;
    const load = pod('client-a').ns.stream([process.execPath, join(packageRoot(), 'dist/e2e/load.js'), '--host', '10.96.3.40', '--port', '80',
      '--rate', String(RATE), '--seconds', '90', '--timeout-ms', '60000', '--until-stdin-ends']);
    t.teardown(() => load.end());
    const keys = ['web-1', 'web-2', 'web-3'].map((name) => endpointKey('tcp', pod(name).ipv4, 9090));
    const measured = async () => measuredConnections(await cluster.logEntries(nodeA, restart), load.lines.map((line) => JSON.parse(line) as LoadRequest), keys);
    // The load runs until CONNECTIONS connections have started under weights the balancer published
    // and the kernel holds (an event, whenever it comes: the balancer samples every 2 s, and a busy
    // machine slows everything), or fails when its 90 s are over.
    const CONNECTIONS = 1000;
    try {
      while ((await measured()).length < CONNECTIONS) await load.waitFor(() => true, { from: load.lines.length + 24 });
    } catch (error) {
      t.fail(`fewer than ${CONNECTIONS} connections under published weights: ${(error as Error).message}\n${(await cluster.logEntries(nodeA, restart)).filter((entry) => entry.msg === 'endpoint weights changed').map((entry) => JSON.stringify(entry)).join('\n')}`);
      return;
    }
    await load.end();
    const requests = load.lines.map((line) => JSON.parse(line) as LoadRequest);
    const sample = (await measured()).sort((a, b) => a.t - b.t).slice(0, CONNECTIONS);
    const seconds = (from: number, to: number) => `${((to - from) / 1000).toFixed(1)} s`;
    t.log(`load: ${requests.length} connections in ${seconds(requests[0]!.t, requests.at(-1)!.t)}; the first under published weights ${seconds(requests[0]!.t, sample[0]!.t)} after it began, the ${CONNECTIONS}th ${seconds(sample[0]!.t, sample.at(-1)!.t)} later`);
    t.deepEqual(sample.filter((request) => request.server === undefined), [], 'every measured connection reached an endpoint');
    const slow = sample.filter((request) => request.server === pod('web-3').ipv4).length;
    const expected = sample.reduce((sum, request) => sum + request.share, 0);
    // The assertion: web-3 got fewer than `cutoff` of CONNECTIONS, where a uniform third (a balancer
    // without effect) would stay under `cutoff` with probability 1e-3. The false-failure probability
    // under the weights the kernel held is at most exp(-2 (cutoff + 1 - expected)² / CONNECTIONS)
    // (hoeffdingUpperTail; it holds although the weights follow the traffic): below 1e-6 while web-3's
    // expected share stays under 0.2; the shares seen here, 0.15 to 0.19, give 5e-17 to 5e-9.
    const cutoff = binomialLowerQuantile(CONNECTIONS, 1 / 3, 1e-3);
    const falseFailure = hoeffdingUpperTail(CONNECTIONS, cutoff + 1 - expected);
    t.log(`web-3 got ${slow} of ${CONNECTIONS} connections under published weights (expected ${expected.toFixed(0)}; uniform ${(CONNECTIONS / 3).toFixed(0)}); at most ${cutoff} passes; false-failure bound ${falseFailure.toExponential(1)}`);
    t.true(slow <= cutoff, `${slow} > ${cutoff}: not clearly under its uniform third`);
    // Every weight is at least the floor (0.1 of an idle endpoint's): P(no connection at all) ≤ exp(-expected).
    t.true(slow > 0, 'but not starved');
    const metrics = parseMetrics((await get(nodeA, 'http://127.0.0.1:10249/metrics')).body);
    t.true(metrics.get('ferry_balancer_weight_updates_total')! >= 1);
    t.true(metrics.get('ferry_balancer_sample_duration_seconds_count')! >= 1);
  });

  test.serial(`kernel: agent ${backend}: ferry top --once -o json shows the weights and shares the kernel holds, the loaded endpoint busiest with the smallest share`, async (t) => {
    // Waits on events only (an agent's start, a weight change in its log and the sync after it, a
    // consistent reading); this bounds a hang on a busy machine.
    t.timeout(240_000);
    // Port 9091: web-1 and web-2 serve a connection in 2 ms, web-3 in 1 s, so that the connections the
    // load sends it stay open, queued (load: bounded by its rate and seconds, each connection by its
    // timeout, and all end when the load's stdin does).
    for (const [name, serialMs] of [['web-1', 2], ['web-2', 2], ['web-3', 1000]] as const) await cluster.startServer(pod(name), [9091], { serialMs });
    const CLUSTER_IP = '10.96.3.60';
    const id = 'default/topped:http/tcp';
    await cluster.apply([service('topped', CLUSTER_IP, { ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 9091 }] }),
      ...cluster.endpointSlices('topped', ['web-1', 'web-2', 'web-3'], [{ name: 'http', port: 9091 }])], backend);
    const { nodeA, restart } = await leastBusyNodeA(t);

    const load = pod('client-a').ns.stream([process.execPath, join(packageRoot(), 'dist/e2e/load.js'), '--host', CLUSTER_IP, '--port', '80',
      '--rate', '10', '--seconds', '120', '--timeout-ms', '60000', '--until-stdin-ends']);
    t.teardown(() => load.end());
    const slow = endpointKey('tcp', pod('web-3').ipv4, 9091);
    // The event: node-a's balancer lowers web-3's weight, and a sync puts that into the kernel.
    const changed = await cluster.waitForLog(nodeA, (entry) => entry.msg === 'endpoint weights changed'
      && ((entry.weights as Record<string, number>)[slow] ?? 1) < 1, { after: restart, timeoutMs: 120_000 });
    await cluster.waitForLog(nodeA, (entry) => entry.msg === 'synced', { after: changed.offset });

    const top = async (args: string[] = ['-o', 'json']) => {
      const result = await cluster.ferry(nodeA, ['top', '--once', ...args]);
      if (result.exitCode !== 0) throw new Error(`ferry top failed: ${result.stderr}`);
      return result.stdout;
    };
    const portOf = (view: BalancerView) => view.servicePorts.find((port) => port.id === id && port.family === 'IPv4');
    // Settled: the rules the agent last synced hold the weights its balancer published (no sync pending).
    const settled = (port: BalancerPort | undefined) => port !== undefined && port.endpoints.every((endpoint) => endpoint.cluster !== null)
      && isDeepStrictEqual(integerWeights(port.endpoints.map((endpoint) => endpoint.balancerWeight)), port.endpoints.map((endpoint) => endpoint.cluster!.weight));
    const kernel = async () => {
      const result = await cluster.ferry(nodeA, ['services', '--backend', backend, '-o', 'json']);
      if (result.exitCode !== 0) throw new Error(`ferry services failed: ${result.stderr}`);
      return (JSON.parse(result.stdout) as FrontendRecord[]).find((record) => record.kind === 'ClusterIP' && record.address === CLUSTER_IP && record.port === 80 && record.protocol === 'tcp');
    };
    // A consistent reading: `top` before and after the kernel is read shows the same sync, with no weight
    // change pending, so the kernel held those rules in between. The balancer republishes at most every
    // 5 s, so a reading that straddles a change is tried again.
    const deadline = Date.now() + 90_000;
    let reading: { view: BalancerView; port: BalancerPort; held: FrontendRecord | undefined } | undefined;
    const tries: string[] = [];
    while (!reading && Date.now() < deadline) {
      const before = JSON.parse(await top()) as BalancerView;
      if (!settled(portOf(before))) {
        tries.push(`pending: ${JSON.stringify(portOf(before))}`);
        continue;
      }
      const held = await kernel();
      const after = JSON.parse(await top()) as BalancerView;
      if (after.syncedAt === before.syncedAt && isDeepStrictEqual(portOf(after)?.endpoints.map((e) => e.cluster), portOf(before)!.endpoints.map((e) => e.cluster))) {
        reading = { view: before, port: portOf(before)!, held };
      } else tries.push(`synced between: ${before.syncedAt} -> ${after.syncedAt}`);
    }
    // The table shows the same, web-3 first in its Service port (read while the load still runs).
    const table = reading ? await top([]) : '';
    await load.end();
    if (!reading) return t.fail(`no consistent reading of top and the kernel within 90 s: ${tries.join('\n')}`);
    const { view, port, held } = reading;
    t.log(`after ${tries.length} retries: ${port.endpoints.map((e) => `${e.ip} load ${e.load} weight ${e.cluster!.weight} share ${e.cluster!.share.toFixed(3)}`).join('; ')}`);
    t.like(view, { node: 'node-a', backend, balancing: 'least-busy' });
    t.truthy(view.sampledAt && view.syncedAt);
    t.deepEqual(port.frontends, [{ kind: 'ClusterIP', address: CLUSTER_IP, port: 80 }]);
    // Every endpoint's share in top is the one the kernel draws with at the cluster IP.
    t.truthy(held, 'the kernel holds the cluster IP frontend');
    const kernelShares = new Map(held!.endpoints.map((endpoint) => [`${endpoint.ip}:${endpoint.port}`, endpoint.probability]));
    t.deepEqual([...kernelShares.keys()].sort(), port.endpoints.map((endpoint) => `${endpoint.ip}:${endpoint.port}`).sort());
    for (const endpoint of port.endpoints) {
      const inKernel = kernelShares.get(`${endpoint.ip}:${endpoint.port}`)!;
      t.true(Math.abs(inKernel - endpoint.cluster!.share) < 1e-6, `${endpoint.ip}: top's share ${endpoint.cluster!.share} (weight ${endpoint.cluster!.weight}), the kernel's ${inKernel}`);
    }
    // The loaded endpoint: the highest load and the smallest share.
    const [loaded, ...others] = [...port.endpoints].sort((a, b) => (b.load ?? 0) - (a.load ?? 0));
    t.is(loaded!.ip, pod('web-3').ipv4, `the busiest endpoint is web-3: ${JSON.stringify(port.endpoints)}`);
    t.true(others.every((other) => loaded!.load! > other.load! && loaded!.cluster!.share < other.cluster!.share), JSON.stringify(port.endpoints));
    t.true(table.split('\n').find((line) => line.startsWith(id))?.includes(`${pod('web-3').ipv4}:9091`), table);
  });
}

/** A line of e2e/load.ts. */
interface LoadRequest {
  t: number;
  server?: string;
  error?: string;
}

/**
 * The load's connections that started while the kernel held weights the balancer published, each
 * with web-3's (keys[2]) share of the new traffic under those weights. A change is in force from the
 * first sync that started after it was logged (its "synced" line, when the kernel holds it) until the
 * next change is logged; connections between a change and that sync are left out, as are those before
 * the first change. The share is raised by 0.002 for the rendering (integer weights out of 1,000).
 */
function measuredConnections(log: AgentLogEntry[], requests: LoadRequest[], keys: string[]): (LoadRequest & { share: number })[] {
  const changes = log.filter((entry) => entry.msg === 'endpoint weights changed');
  const syncs = log.filter((entry) => entry.msg === 'synced');
  const periods: { from: number; until: number; share: number }[] = [];
  for (const [index, change] of changes.entries()) {
    const applied = syncs.find((sync) => sync.time - Number(sync.ms) >= change.time);
    if (!applied) break;
    const weights = change.weights as Record<string, number>;
    const [w1, w2, w3] = keys.map((key) => weights[key] ?? 1) as [number, number, number];
    periods.push({ from: applied.time, until: changes[index + 1]?.time ?? Infinity, share: w3 / (w1 + w2 + w3) + 0.002 });
  }
  return requests.flatMap((request) => {
    const period = periods.find(({ from, until }) => request.t > from && request.t < until);
    return period ? [{ ...request, share: period.share }] : [];
  });
}
