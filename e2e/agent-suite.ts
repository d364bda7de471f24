// The agent's own behaviour in the namespace cluster: restart under traffic, a broken manifest, UDP
// conntrack cleanup, health-check node ports, /healthz and /metrics. One cluster per backend.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import test from 'ava';
import { packageRoot } from '../controlplane/package-root.js';
import { Cluster, type NamespaceHost, type NamespaceNode } from './cluster.js';
import type { Backend, ProbeResult } from './driver.js';
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

async function syncsAfter(cluster: Cluster, node: NamespaceNode, marker: string): Promise<string[]> {
  const log = await readFile(cluster.agentLog(node), 'utf8');
  return log.slice(log.lastIndexOf(marker)).split('\n').filter((line) => line.includes('"msg":"synced"')).map((line) => (JSON.parse(line) as { kind: string }).kind);
}

export function registerAgentTests(backend: Backend): void {
  let cluster: Cluster;
  test.before(async () => {
    cluster = await Cluster.create(clusterSpec);
  });
  test.after.always(async () => {
    await cluster?.destroy();
  });
  const pod = (name: string) => cluster.pods.get(name)!;
  const node = (name: string) => cluster.nodes.get(name)!;
  const servers = (results: ProbeResult[]) => [...new Set(results.map((result) => result.server ?? `failed: ${result.error}`))].sort();

  test.serial(`kernel: agent ${backend}: a restarted agent adopts its rules: no connection fails and its first sync writes nothing`, async (t) => {
    await cluster.apply([service('web', '10.96.3.10'), ...cluster.endpointSlices('web', ['web-1', 'web-2', 'web-3'], [HTTP, DNS])], backend);
    const traffic = cluster.probe(pod('client-a'), { proto: 'tcp', host: '10.96.3.10', port: 80, count: 120, intervalMs: 20 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await cluster.stopAgent(node('node-a'));
    t.is(await cluster.ferry(node('node-a'), ['diff', '--node', 'node-a', '-f', cluster.manifestsPath, '--backend', backend, '--config', cluster.configPath]).then((r) => r.exitCode), 0, 'SIGTERM left the rules in place');
    await writeFile(cluster.agentLog(node('node-a')), '--- restart ---\n', { flag: 'a' });
    cluster.startAgent(node('node-a'), backend);
    const results = await traffic;
    t.deepEqual(results.filter((result) => !result.ok), [], 'no connection failed across the restart');
    await cluster.settle(backend);
    await new Promise((resolve) => setTimeout(resolve, 500));
    t.is((await syncsAfter(cluster, node('node-a'), '--- restart ---'))[0], 'unchanged', 'the first sync after the restart adopted the rules');
  });

  test.serial(`kernel: agent ${backend}: a manifest that does not parse keeps the last good rules`, async (t) => {
    const broken = join(dirname(cluster.manifestsPath), 'broken.yaml');
    await writeFile(broken, 'kind: [unclosed\n');
    t.teardown(() => rm(broken, { force: true }));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await cluster.settle(backend, 1000);
    const results = await cluster.probe(pod('client-b'), { proto: 'tcp', host: '10.96.3.10', port: 80, count: 10 });
    t.deepEqual(results.filter((result) => !result.ok), []);
    t.regex(await readFile(cluster.agentLog(node('node-b')), 'utf8'), /manifests did not parse; keeping the last good state/);
  });

  test.serial(`kernel: agent ${backend}: a UDP flow to an endpoint that went away moves to a live one (conntrack cleared)`, async (t) => {
    await cluster.apply([service('udp', '10.96.3.20'), ...cluster.endpointSlices('udp', ['web-1'], [HTTP, DNS])], backend);
    // One socket, one conntrack flow: without the cleanup it would keep going to web-1, which still answers.
    const flow = cluster.probe(pod('client-a'), { proto: 'udp', host: '10.96.3.20', port: 53, count: 50, intervalMs: 100, reuse: true });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await cluster.apply([service('udp', '10.96.3.20'), ...cluster.endpointSlices('udp', ['web-2'], [HTTP, DNS])], backend);
    const results = await flow;
    t.is(results[0]!.server, pod('web-1').ipv4);
    t.is(results.at(-1)!.server, pod('web-2').ipv4, `the flow moved: ${servers(results).join(', ')}`);
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
    const check = async (target: string) => get(external, `http://${node(target).ipv4}:32100/`);
    await cluster.apply(local('web-1'), backend);
    const onA = await check('node-a');
    t.is(onA.status, 200);
    t.deepEqual(JSON.parse(onA.body), { service: { namespace: 'default', name: 'hc' }, localEndpoints: 1, serviceProxyHealthy: true });
    t.is((await check('node-b')).status, 503);
    await cluster.apply(local('web-2'), backend);
    t.is((await check('node-a')).status, 503);
    t.is((await check('node-b')).status, 200);
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
    t.true([...metrics.entries()].some(([name, value]) => name.startsWith('ferry_rules{') && value > 10));
    t.is(metrics.get(`ferry_sync_proxy_rules_restore_failures_total{backend="${backend}"}`) ?? 0, 0);
  });

  test.serial(`kernel: agent ${backend}: the balancer gives a made-busy endpoint less of the new traffic`, async (t) => {
    // Port 9090 on three pods: two with a 2 ms worker, web-3 with a 40 ms one; uniform would send it twice its capacity.
    for (const [name, serialMs] of [['web-1', 2], ['web-2', 2], ['web-3', 40]] as const) await cluster.startServer(pod(name), [9090], { serialMs });
    await cluster.apply([service('busy', '10.96.3.40', { ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 9090 }] }),
      ...cluster.endpointSlices('busy', ['web-1', 'web-2', 'web-3'], [{ name: 'http', port: 9090 }])], backend);
    // node-a's agent balances by load for this test, and goes back to uniform (as `settle` expects) after it.
    await cluster.stopAgent(node('node-a'));
    cluster.startAgent(node('node-a'), backend, 'least-busy');
    t.teardown(async () => {
      await cluster.stopAgent(node('node-a'));
      cluster.startAgent(node('node-a'), backend);
      await cluster.settle(backend);
    });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const output = await pod('client-a').ns.run([process.execPath, join(packageRoot(), 'dist/e2e/load.js'), '--host', '10.96.3.40', '--port', '80', '--rate', '150', '--seconds', '10']);
    const requests = output.trim().split('\n').map((line) => JSON.parse(line) as { at: number; server?: string });
    const late = requests.filter((request) => request.at >= 6000 && request.server);
    const slowShare = late.filter((request) => request.server === pod('web-3').ipv4).length / late.length;
    t.log(`web-3 got ${(slowShare * 100).toFixed(0)} % of the connections in the last 4 s`);
    // Its capacity is a sixth of the load: least-busy settles near that, uniform would give it a third.
    t.true(slowShare < 0.25, 'well under its uniform third');
    t.true(slowShare > 0, 'but not starved');
    t.regex(await readFile(cluster.agentLog(node('node-a')), 'utf8'), /endpoint weights changed/);
    const metrics = parseMetrics((await get(node('node-a'), 'http://127.0.0.1:10249/metrics')).body);
    t.true(metrics.get('ferry_balancer_weight_updates_total')! >= 1);
    t.true(metrics.get('ferry_balancer_sample_duration_seconds_count')! >= 1);
  });
}
