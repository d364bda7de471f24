import test from 'ava';
import { applyRules, readFrontends } from '../dataplane/dataplane.js';
import { BACKEND_NAMES, type BackendName } from '../dataplane/backend-names.js';
import { render } from '../dataplane/render.js';
import { runChecked, type Runner } from '../dataplane/runner.js';
import { desiredFrontends, type ServiceFrontend } from '../rules/frontends.js';
import { bpfWorkspace } from './helpers/bpf-workspace.js';
import { ferry } from './helpers/cli.js';
import { renderScenario } from './helpers/golden.js';
import { throwawayNamespace } from './helpers/netns-runner.js';

// `ferry services` reads what the kernel holds: for every backend and scenario (the masquerade-all one
// with load-aware weights of 1:3), the frontends read back from the live rules or maps are those the
// desired NodeRules describe, endpoint shares included.

/** iptables holds a probability to 11 decimals; a Service's name only where the kernel's objects carry one. */
function comparable(frontends: ServiceFrontend[], named: (frontend: ServiceFrontend) => boolean) {
  return frontends.map((frontend) => ({
    ...frontend,
    service: named(frontend) ? frontend.service : null,
    endpoints: frontend.endpoints.map((endpoint) => ({ ...endpoint, probability: Math.round(endpoint.probability * 1e9) / 1e9 })),
  }));
}

/** Which frontends name their Service when read back: none in eBPF maps, nftables' verdict-only ones not. */
const naming: Record<BackendName, (live: ServiceFrontend[]) => (frontend: ServiceFrontend) => boolean> = {
  iptables: () => () => true,
  ebpf: () => () => false,
  nftables: (live) => (frontend) => live.some((held) => held.address === frontend.address && held.port === frontend.port && held.protocol === frontend.protocol && held.kind === frontend.kind && held.service !== null),
};

async function placeFor(backend: BackendName, runner: Runner, t: Parameters<typeof bpfWorkspace>[0]) {
  if (backend !== 'ebpf') return {};
  const { cgroup, pinDir } = await bpfWorkspace(t);
  // The packet program's node ports answer at the node's addresses.
  await runChecked(runner, 'veths', 'ip', ['link', 'add', 'fs0', 'type', 'veth', 'peer', 'name', 'fs1']);
  for (const device of ['fs0', 'fs1']) await runChecked(runner, 'up', 'ip', ['link', 'set', device, 'up']);
  await runChecked(runner, 'address', 'ip', ['address', 'add', '192.168.56.11/24', 'dev', 'fs0']);
  return { ebpf: { cgroupRoot: cgroup, bpfRoot: pinDir } };
}

for (const backend of BACKEND_NAMES) {
  for (const scenario of ['default', 'masquerade-all']) {
    test(`kernel: the ${backend} frontends read back from the kernel are the desired ones (${scenario})`, async (t) => {
      const { runner } = await throwawayNamespace(t);
      const options = await placeFor(backend, runner, t);
      const { rules } = await renderScenario(scenario, backend);
      t.deepEqual((await readFrontends(runner, [backend], options)).get(backend), [], 'nothing before apply');
      await applyRules(runner, render(rules, backend, options));
      const live = (await readFrontends(runner, [backend], options)).get(backend)!;
      const desired = desiredFrontends(rules);
      t.true(desired.length > 30, `${desired.length} frontends`);
      if (scenario === 'masquerade-all') t.true(desired.some((frontend) => frontend.endpoints.some((endpoint) => endpoint.probability === 0.25)), 'the weights of 1:3 give a share of a quarter');
      t.deepEqual(comparable(live, naming[backend](live)), comparable(desired, naming[backend](live)));
      if (backend !== 'ebpf') t.true(live.filter((frontend) => frontend.verdict === 'forward').every((frontend) => frontend.service !== null), 'every forwarding frontend names its Service');
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
