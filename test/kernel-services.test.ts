import test from 'ava';
import { applyRules, readFrontends } from '../dataplane/dataplane.js';
import { BACKEND_NAMES, type BackendName } from '../dataplane/backend-names.js';
import { render } from '../dataplane/render.js';
import { runChecked, type Runner } from '../dataplane/runner.js';
import { traceConnection, type TraceQuery } from '../controlplane/trace/trace.js';
import { desiredFrontends, frontendRules, type ServiceFrontend } from '../rules/frontends.js';
import { bpfWorkspace } from './helpers/bpf-workspace.js';
import { ferry } from './helpers/cli.js';
import { renderScenario } from './helpers/golden.js';
import { throwawayNamespace } from './helpers/netns-runner.js';

// `ferry services` and `ferry trace --live` read what the kernel holds: for every backend and scenario
// (masquerade-all has load-aware weights of 1:3), the frontends read back from the live rules or maps are
// those the desired NodeRules describe, endpoint shares included, and the tracer answers the same for
// connections from a pod, the node, a client in the source ranges and one outside them, to every
// frontend, an unserved port of a cluster IP, an unallocated service address and an address of no one.

/** iptables holds a probability to 11 decimals; a Service's name only where the kernel's objects carry one. */
const rounded = (endpoints: { ip: string; port: number; probability: number }[] | null) =>
  endpoints && endpoints.map((endpoint) => ({ ...endpoint, probability: Math.round(endpoint.probability * 1e9) / 1e9 }));

/** Which frontends name their Service when read back: none in eBPF maps, nftables' verdict-only ones where nothing else names them. */
const naming: Record<BackendName, (live: ServiceFrontend[]) => (frontend: Pick<ServiceFrontend, 'address' | 'port' | 'protocol' | 'kind'>) => boolean> = {
  iptables: () => () => true,
  ebpf: () => () => false,
  nftables: (live) => (frontend) => live.some((held) => held.address === frontend.address && held.port === frontend.port && held.protocol === frontend.protocol && held.kind === frontend.kind && held.service !== null),
};

function comparable(frontends: ServiceFrontend[], named: (frontend: ServiceFrontend) => boolean) {
  return frontends.map((frontend) => ({ ...frontend, service: named(frontend) ? frontend.service : null, endpoints: rounded(frontend.endpoints), inside: rounded(frontend.inside) }));
}

const NODE = ['192.168.56.11', 'fd00:56::11'];
const SOURCES = {
  IPv4: ['192.168.56.11', '10.244.1.50', '192.168.56.100', '203.0.113.99'],
  IPv6: ['fd00:56::11', 'fd00:244:0:1::50', 'fd00:56::100', '2001:db8::99'],
};

/** Every frontend (node ports at the node's address) and the misses, from every kind of source. */
function flows(frontends: ServiceFrontend[]): TraceQuery[] {
  const targets = frontends.map((frontend) => ({
    destination: frontend.kind === 'NodePort' ? NODE[frontend.address.includes(':') ? 1 : 0]! : frontend.address, port: frontend.port, protocol: frontend.protocol,
  }));
  targets.push(
    { destination: '10.96.0.10', port: 9999, protocol: 'tcp' }, { destination: '10.96.99.99', port: 80, protocol: 'tcp' }, { destination: '198.18.7.7', port: 80, protocol: 'tcp' },
    { destination: NODE[0]!, port: 31999, protocol: 'tcp' },
  );
  return targets.flatMap((target) => SOURCES[target.destination.includes(':') ? 'IPv6' : 'IPv4'].map((source) => ({ source, ...target })));
}

async function placeFor(backend: BackendName, runner: Runner, t: Parameters<typeof bpfWorkspace>[0]) {
  if (backend !== 'ebpf') return {};
  const { cgroup, pinDir } = await bpfWorkspace(t);
  // The packet program's node ports answer at the node's addresses.
  await runChecked(runner, 'veths', 'ip', ['link', 'add', 'fs0', 'type', 'veth', 'peer', 'name', 'fs1']);
  for (const device of ['fs0', 'fs1']) await runChecked(runner, 'up', 'ip', ['link', 'set', device, 'up']);
  await runChecked(runner, 'address', 'ip', ['address', 'add', '192.168.56.11/24', 'dev', 'fs0']);
  await runChecked(runner, 'address', 'ip', ['address', 'add', 'fd00:56::11/64', 'dev', 'fs0', 'nodad']);
  return { ebpf: { cgroupRoot: cgroup, bpfRoot: pinDir } };
}

for (const backend of BACKEND_NAMES) {
  for (const scenario of ['default', 'masquerade-all']) {
    test(`kernel: the ${backend} frontends read back from the kernel are the desired ones, and trace alike (${scenario})`, async (t) => {
      const { runner } = await throwawayNamespace(t);
      const options = await placeFor(backend, runner, t);
      const { rules } = await renderScenario(scenario, backend);
      t.deepEqual((await readFrontends(runner, [backend], options)).get(backend), { families: [], frontends: [] }, 'nothing before apply');
      await applyRules(runner, render(rules, backend, options));
      const live = (await readFrontends(runner, [backend], options)).get(backend)!;
      const desired = desiredFrontends(rules);
      t.true(desired.frontends.length > 30, `${desired.frontends.length} frontends`);
      if (scenario === 'masquerade-all') t.true(desired.frontends.some((frontend) => frontend.endpoints.some((endpoint) => endpoint.probability === 0.25)), 'the weights of 1:3 give a share of a quarter');
      const named = naming[backend](live.frontends);
      t.deepEqual(comparable(live.frontends, named), comparable(desired.frontends, named));
      if (backend !== 'ebpf') t.true(live.frontends.filter((frontend) => frontend.verdict === 'forward').every((frontend) => frontend.service !== null), 'every forwarding frontend names its Service');

      const liveRules = frontendRules(rules.node, live);
      const queries = flows(desired.frontends);
      t.true(queries.length > 150, `${queries.length} flows`);
      const verdicts = new Set<string>();
      for (const query of queries) {
        const want = traceConnection(rules, NODE, query);
        const got = traceConnection(liveRules, NODE, query);
        verdicts.add(want.verdict);
        const frontend = { address: query.destination, port: query.port, protocol: query.protocol, kind: want.entry === 'clusterIP' ? 'ClusterIP' : want.entry === 'nodePort' ? 'NodePort' : 'External' } as const;
        const nodePortRow = { ...frontend, address: query.destination.includes(':') ? '::' : '0.0.0.0' };
        const shown = (answer: typeof want) => ({
          verdict: answer.verdict,
          // The kernel names a load-balancer IP only where source ranges guard it.
          entry: answer.entry === 'loadBalancerIP' ? 'externalIP' : answer.entry,
          service: named(frontend.kind === 'NodePort' ? nodePortRow : frontend) ? answer.service : null,
          masquerade: answer.masquerade, endpoints: rounded(answer.endpoints),
        });
        t.deepEqual(shown(got), shown(want), `${query.source} -> ${query.destination}:${query.port}/${query.protocol}`);
      }
      t.deepEqual([...verdicts].sort(), ['drop', 'forward', 'notIntercepted', 'reject'], 'every verdict is among the flows');
    });
  }
}

test('kernel: ferry services lists what ferry apply wrote, and -n, -o json and -o wide work on it', async (t) => {
  const { name } = await throwawayNamespace(t);
  // Every backend is read, eBPF's at a place of this test's own (it holds nothing there).
  const { cgroup, pinDir } = await bpfWorkspace(t);
  const place = ['--cgroup-root', cgroup, '--bpf-root', pinDir];
  const applied = await ferry(['apply', '--node', 'node-a', '-f', 'examples/cluster.yaml', '--backend', 'nftables'], { netns: name });
  t.is(applied.exitCode, 0, applied.stderr);
  const json = await ferry(['services', '-o', 'json', ...place], { netns: name });
  t.is(json.exitCode, 0, json.stderr);
  const records = JSON.parse(json.stdout) as (ServiceFrontend & { backend: string })[];
  t.true(records.length > 10);
  t.true(records.every((record) => record.backend === 'nftables'), 'only the backend that holds rules lists any');
  const dns = records.find((record) => record.address === '10.96.0.10' && record.port === 53 && record.protocol === 'udp')!;
  t.is(dns.kind, 'ClusterIP');
  t.is(dns.service, 'kube-system/kube-dns:dns/udp');
  t.deepEqual(dns.endpoints.map((endpoint) => endpoint.probability), [0.5, 0.5]);
  const shop = await ferry(['services', '-n', 'shop', ...place], { netns: name });
  const lines = shop.stdout.trim().split('\n');
  t.regex(lines[0]!, /^BACKEND\s+FRONTEND\s+KIND\s+SERVICE\s+VERDICT\s+ENDPOINTS$/);
  t.true(lines.length > 3 && lines.slice(1).every((line) => / shop\//.test(line)), shop.stdout);
  const wide = await ferry(['services', '-o', 'wide', '-n', 'shop', ...place], { netns: name });
  t.regex(wide.stdout, /AFFINITY\s+SOURCE RANGES/);
  t.regex(wide.stdout, /10\.96\.10\.20:80\/tcp .* 600s /);
  const empty = await ferry(['services', '-n', 'nowhere', ...place], { netns: name });
  t.is(empty.stdout, '');
  t.regex(empty.stderr, /no frontend names a Service of namespace nowhere/);
});

test('kernel: ferry trace --live answers from the kernel, and says so when the rules there were changed behind ferry', async (t) => {
  const { name, runner } = await throwawayNamespace(t);
  const rule = ['--node', 'node-a', '-f', 'examples/cluster.yaml', '--backend', 'nftables'];
  t.is((await ferry(['apply', ...rule], { netns: name })).exitCode, 0);
  const trace = (...extra: string[]) => ferry(['trace', ...rule, '--from', '10.244.1.50', '--to', '10.96.10.30:8080', ...extra], { netns: name });
  const live = JSON.parse((await trace('--live', '-o', 'json')).stdout) as { verdict: string; service: string; source: string; matchesDesired: boolean; endpoints: unknown[] };
  t.like(live, { verdict: 'forward', service: 'shop/api:http', source: 'kernel', matchesDesired: true });
  t.deepEqual(live.endpoints, JSON.parse((await trace('-o', 'json')).stdout).endpoints);
  // Someone removes the Service's entry: the kernel no longer sends it anywhere, and trace --live says so.
  await runChecked(runner, 'tamper', 'nft', ['delete', 'element', 'ip', 'ferry', 'service-ips', '{', '10.96.10.30', '.', 'tcp', '.', '8080', '}']);
  const tampered = JSON.parse((await trace('--live', '-o', 'json')).stdout) as { verdict: string; matchesDesired: boolean };
  t.like(tampered, { verdict: 'reject', matchesDesired: false }, 'the cluster IP is still one, the port no longer served');
  const text = await trace('--live');
  t.regex(text.stdout, /in the kernel now/);
  t.regex(text.stdout, /the desired rules answer otherwise \(forward to 10\.244\.1\.21:8080, 10\.244\.2\.21:8080\): ferry diff shows the difference/);
});
