import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execaRunner, runChecked } from '../dataplane/runner.js';
import { inThrowawayNamespace } from '../dataplane/runner.js';
import { bpfWorkspace } from './helpers/bpf-workspace.js';
import { ferry } from './helpers/cli.js';
import { throwawayNamespace } from './helpers/netns-runner.js';
import { BACKEND_NAMES } from '../dataplane/backend-names.js';

const example = ['-f', 'examples/cluster.yaml'];

// Each file in a directory of its own, all removed when the file's tests are done.
const made: string[] = [];
test.after.always(() => Promise.all(made.map((directory) => rm(directory, { recursive: true, force: true }))));

async function tempFile(name: string, text: string): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'ferry-cli-'));
  made.push(directory);
  const path = join(directory, name);
  await writeFile(path, text);
  return path;
}

test('kernel: ferry render --node node-a -f examples/cluster.yaml prints a script that nft -c accepts', async (t) => {
  const { stdout, stderr, exitCode } = await ferry(['render', '--node', 'node-a', ...example]);
  t.is(exitCode, 0, stderr);
  t.is(stderr, '');
  t.regex(stdout, /^table ip ferry \{$/m);
  t.regex(stdout, /^table ip6 ferry \{$/m);
  const [command, args] = inThrowawayNamespace('nft', ['-c', '-f', '-']);
  await t.notThrowsAsync(runChecked(execaRunner, 'nft -c', command, args, stdout));
});

test('kernel: ferry render --backend iptables --family IPv4 prints input that iptables-restore --test accepts', async (t) => {
  const { stdout, exitCode } = await ferry(['render', '--node', 'node-a', ...example, '--backend', 'iptables', '--family', 'IPv4']);
  t.is(exitCode, 0);
  t.notRegex(stdout, /IPv6/);
  const [command, args] = inThrowawayNamespace('iptables-restore', ['--test', '--noflush']);
  await t.notThrowsAsync(runChecked(execaRunner, 'iptables-restore --test', command, args, stdout));
});

test('render takes the backend from the config\'s mode, and --backend wins over it', async (t) => {
  const config = await tempFile('kube-proxy.yaml', 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: iptables\nclusterCIDR: 10.244.0.0/16\n');
  t.regex((await ferry(['render', '--node', 'node-a', ...example, '--config', config])).stdout, /^\*nat$/m);
  t.regex((await ferry(['render', '--node', 'node-a', ...example, '--config', config, '--backend', 'nftables'])).stdout, /^table ip ferry/m);
});

test('config values reach the rules: masquerade bit, masqueradeAll and node-port CIDRs', async (t) => {
  const config = await tempFile('kube-proxy.yaml', [
    'apiVersion: kubeproxy.config.k8s.io/v1alpha1', 'kind: KubeProxyConfiguration', 'mode: nftables',
    'nodePortAddresses: [192.168.56.0/24]', 'nftables:', '  masqueradeBit: 5', '  masqueradeAll: true', 'conntrack:', '  maxPerCore: 65536', '',
  ].join('\n'));
  const { stdout, stderr, exitCode } = await ferry(['render', '--node', 'node-a', ...example, '--config', config]);
  t.is(exitCode, 0, stderr);
  t.regex(stdout, /meta mark set meta mark \| 0x20$/m);
  t.regex(stdout, /ip daddr \{ 192\.168\.56\.0\/24 \} fib daddr type local meta l4proto/);
  t.regex(stdout, /ip daddr 10\.96\.0\.10 meta l4proto udp th dport 53 jump mark-for-masquerade/);
  t.regex(stderr, /conntrack\.maxPerCore is not used by ferry \(ignored\), got 65536/, 'an ignored field set to a non-default value is named in a warning');
});

test('an invalid config value is an error naming the field, with exit code 2 and nothing printed', async (t) => {
  const config = await tempFile('kube-proxy.yaml', 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\niptables:\n  masqueradeBit: 40\n');
  const { stdout, stderr, exitCode } = await ferry(['render', '--node', 'node-a', ...example, '--config', config]);
  t.is(exitCode, 2);
  t.is(stdout, '');
  t.regex(stderr, /iptables\.masqueradeBit/);
});

test('an invalid object is skipped with its name and field on stderr while the rest renders', async (t) => {
  const manifest = await tempFile('bad.yaml', [
    'apiVersion: v1', 'kind: Service', 'metadata: {name: bad, namespace: shop}', 'spec:', '  clusterIP: 10.96.99.1', '  ports: [{name: http, port: 70000}]', '',
  ].join('\n'));
  const { stdout, stderr, exitCode } = await ferry(['render', '--node', 'node-a', ...example, '-f', manifest]);
  t.is(exitCode, 0);
  t.regex(stderr, /skipped Service shop\/bad: spec\.ports\[0\]\.port: must be an integer from 1 to 65535, got 70000/);
  t.regex(stdout, /kube-dns/);
  t.notRegex(stdout, /10\.96\.99\.1/);
});

test('errors exit 2 with a message: unknown node, missing file, broken YAML, unknown backend', async (t) => {
  const broken = await tempFile('broken.yaml', 'kind: [unclosed\n');
  const cases: [string[], RegExp][] = [
    [['render', '--node', 'node-x', ...example], /node "node-x" is not among the Node objects/],
    [['render', '--node', 'node-a', '-f', 'no/such/file.yaml'], /no\/such\/file\.yaml: no such file or directory/],
    [['render', '--node', 'node-a', '-f', broken], /broken\.yaml: /],
    [['render', '--node', 'node-a', ...example, '--backend', 'ipvs'], /ipvs/],
    [['render', ...example], /--node/],
  ];
  for (const [args, message] of cases) {
    const { exitCode, stderr } = await ferry(args);
    t.is(exitCode, 2, args.join(' '));
    t.regex(stderr, message);
  }
});

test('--help explains every command with an example', async (t) => {
  const help = await ferry(['--help']);
  t.is(help.exitCode, 0);
  for (const command of ['render', 'diff', 'apply', 'cleanup', 'endpoints', 'trace', 'services', 'top', 'agent']) {
    t.regex(help.stdout, new RegExp(`^  ${command}`, 'm'));
    const own = await ferry([command, '--help']);
    t.is(own.exitCode, 0);
    t.regex(own.stdout, /Examples?:\n {2}ferry /);
  }
});

test('kernel: diff exits 1 before apply and 0 after; apply reports what it did; cleanup leaves nothing', async (t) => {
  const { name, runner } = await throwawayNamespace(t);
  // The eBPF backend's cgroup and pins (the other backends ignore the flags).
  const { cgroup, pinDir } = await bpfWorkspace(t);
  const placement = ['--cgroup-root', cgroup, '--bpf-root', pinDir];
  for (const backend of BACKEND_NAMES) {
    const args = ['--node', 'node-a', ...example, '--backend', backend, ...placement];
    const before = await ferry(['diff', ...args], { netns: name });
    t.is(before.exitCode, 1, before.stderr);
    t.regex(before.stdout, /^\+\+\+ desired/m);
    const applied = await ferry(['apply', ...args], { netns: name });
    t.is(applied.exitCode, 0, applied.stderr);
    t.regex(applied.stdout, new RegExp(`applied ${backend} rules for node-a: 8 services, 12 service ports, 20 endpoints; \\d+ (rule lines added|map entries written), 0 removed; \\d+ ms`));
    const after = await ferry(['diff', ...args], { netns: name });
    t.is(after.exitCode, 0, after.stdout);
    t.is(after.stdout, '');
    t.regex((await ferry(['apply', ...args], { netns: name })).stdout, /already up to date/);
    t.is((await ferry(['cleanup', '--backend', backend, ...placement], { netns: name })).exitCode, 0);
  }
  t.deepEqual(await readdir(pinDir).catch(() => []), [], 'no pins are left');
  t.is((await runChecked(execaRunner, 'cgroup', 'bpftool', ['cgroup', 'show', cgroup])).trim(), '', 'no program is left on the cgroup');
  t.notRegex(await runChecked(runner, 'nft', 'nft', ['list', 'ruleset']), /ferry|FERRY/);
  t.notRegex(await runChecked(runner, 'save', 'iptables-save', []), /FERRY/);
  t.notRegex(await runChecked(runner, 'save', 'ip6tables-save', []), /FERRY/);
});

test('ferry endpoints lists each endpoint with its node, conditions and source, and what a node uses', async (t) => {
  const { stdout, stderr, exitCode } = await ferry(['endpoints', '-n', 'shop', '-f', 'examples/app.yaml', '--node', 'node-a']);
  t.is(exitCode, 0, stderr);
  const rows = stdout.trim().split('\n').map((line) => line.split(/\s{2,}/));
  t.deepEqual(rows[0], ['SERVICE', 'PORT', 'ENDPOINT', 'NODE', 'READY', 'SERVING', 'TERMINATING', 'SOURCE', 'HINTS', 'LOCAL', 'TOPOLOGY', 'USED BY THIS NODE']);
  t.deepEqual(rows.find((row) => row[2] === '10.244.2.12:9090'), ['shop/web', 'http 80/TCP', '10.244.2.12:9090', 'node-b', 'true', 'true', 'false', 'selector', '-', 'no', '-', 'cluster']);
  t.deepEqual(rows.find((row) => row[2] === '10.244.2.11:8080')?.slice(4, 12), ['false', 'true', 'true', 'selector', '-', 'no', '-', '-'], 'terminating and not used: a ready endpoint exists');
  t.deepEqual(rows.find((row) => row[2] === '10.244.1.21:8080')?.slice(9), ['yes', '-', '-'], 'a not-ready local endpoint is not used');
  t.regex(stderr, /Service shop\/reports: spec\.selector: matches no Pod/);
});

test('ferry endpoints shows the topology hints and the endpoints a node leaves out because of them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-zones-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'zones.yaml');
  const node = (name: string, zone: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'topology.kubernetes.io/zone': zone } }, status: { addresses: [{ type: 'InternalIP', address: '192.168.0.1' }] } });
  const endpoint = (ip: string, nodeName: string, zone: string) => ({ addresses: [ip], nodeName, conditions: { ready: true }, hints: { forZones: [{ name: zone }] } });
  await writeFile(file, stringify({ apiVersion: 'v1', kind: 'List', items: [
    node('node-a', 'zone-1'), node('node-b', 'zone-2'),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] } },
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4',
      endpoints: [endpoint('10.244.1.5', 'node-a', 'zone-1'), endpoint('10.244.2.5', 'node-b', 'zone-2')], ports: [{ name: 'http', port: 8080 }] },
  ] }));
  const { stdout, stderr, exitCode } = await ferry(['endpoints', 'web', '-f', file, '--node', 'node-b']);
  t.is(exitCode, 0, stderr);
  const rows = stdout.trim().split('\n').slice(1).map((line) => line.split(/\s{2,}/));
  t.deepEqual(rows.map((row) => [row[2], row[8], row[10], row[11]]), [
    ['10.244.1.5:8080', 'zone=zone-1', 'PreferSameZone', '-'],
    ['10.244.2.5:8080', 'zone=zone-2', 'PreferSameZone', 'cluster'],
  ]);
});

test('ferry endpoints -o yaml prints derived EndpointSlices that render the same rules when fed back', async (t) => {
  const derived = await ferry(['endpoints', '-n', 'shop', '-f', 'examples/app.yaml', '-o', 'endpointslices']);
  t.is(derived.exitCode, 0);
  const slices = await tempFile('slices.yaml', derived.stdout);
  const fromPods = await ferry(['render', '--node', 'node-a', '-f', 'examples/app.yaml']);
  const fromSlices = await ferry(['render', '--node', 'node-a', '-f', 'examples/app.yaml', '-f', slices]);
  t.regex(fromPods.stdout, /dnat to 10\.244\.2\.12:9090/);
  t.is(fromSlices.stdout, fromPods.stdout);
});

test('ferry endpoints names a Service that is not there, with exit code 2', async (t) => {
  const { exitCode, stderr } = await ferry(['endpoints', 'nope', '-f', 'examples/app.yaml']);
  t.is(exitCode, 2);
  t.regex(stderr, /Service default\/nope is not in the input/);
});

test('input mistakes are visible: a bad --backend is one line, -f is required, --strict turns warnings into exit 2', async (t) => {
  const bad = await ferry(['render', '--node', 'node-a', ...example, '--backend', 'nftabels']);
  t.is(bad.exitCode, 2);
  t.is(bad.stdout, '');
  t.is(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  t.regex(bad.stderr, /^ferry: option '--backend <backend>' argument 'nftabels' is invalid\. Allowed choices are nftables, iptables, ebpf\. \(see --help\)$/m);
  for (const command of ['render', 'diff', 'apply']) {
    const missing = await ferry([command, '--node', 'node-a']);
    t.is(missing.exitCode, 2, command);
    t.regex(missing.stderr, /required option '-f, --file <path>' not specified/, command);
  }
  const typo = await tempFile('typo.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  clusterIP: 10.96.9.9\n  externalTraficPolicy: Local\n  ports: [{port: 80, targetPrt: 8080}]\n');
  const lenient = await ferry(['render', '--node', 'node-a', ...example, '-f', typo]);
  t.is(lenient.exitCode, 0);
  t.regex(lenient.stderr, /Service shop\/web: spec\.externalTraficPolicy: unknown field/);
  t.regex(lenient.stderr, /Service shop\/web: spec\.ports\[0\]\.targetPrt: unknown field/);
  const strict = await ferry(['render', '--node', 'node-a', ...example, '-f', typo, '--strict']);
  t.is(strict.exitCode, 2);
  t.is(strict.stdout, '', 'nothing rendered under --strict');
  t.regex(strict.stderr, /--strict: 2 warnings or skipped objects; nothing done/);
  t.is((await ferry(['render', '--node', 'node-a', ...example, '--strict'])).exitCode, 0, 'a clean input passes --strict');
  t.is((await ferry(['endpoints', '-n', 'shop', '-f', 'examples/app.yaml', '--strict'])).exitCode, 2, 'a selector matching no Pod is a warning');
});

test('--version answers on ferry and on every command', async (t) => {
  const { version } = JSON.parse(await (await import('node:fs/promises')).readFile('package.json', 'utf8')) as { version: string };
  for (const args of [['--version'], ['render', '--version'], ['diff', '--version'], ['apply', '--version'], ['agent', '--version'], ['cleanup', '--version'], ['endpoints', '--version']]) {
    const result = await ferry(args);
    t.is(result.exitCode, 0, args.join(' '));
    t.is(result.stdout.trim(), version, args.join(' '));
  }
});

test('a kubeconfig error names the kubeconfig; the agent exits 2', async (t) => {
  const missing = await ferry(['agent', '--node', 'node-a', '--kubeconfig', '/nonexistent/kubeconfig.conf']);
  t.is(missing.exitCode, 2);
  t.regex(missing.stderr, /^ferry: kubeconfig \/nonexistent\/kubeconfig\.conf: .*ENOENT/m);
  const broken = await tempFile('kubeconfig', 'apiVersion: v1\nkind: Config\nclusters: [{cluster: {}}]\n');
  const invalid = await ferry(['agent', '--node', 'node-a', '--kubeconfig', broken]);
  t.is(invalid.exitCode, 2);
  t.regex(invalid.stderr, new RegExp(`^ferry: kubeconfig ${broken}: `, 'm'));
});

test('kernel: switching backend with apply removes the other backend\'s ferry rules; cleanup removes every backend\'s', async (t) => {
  const { name, runner } = await throwawayNamespace(t);
  const args = ['--node', 'node-a', ...example];
  t.is((await ferry(['apply', ...args, '--backend', 'nftables'], { netns: name })).exitCode, 0);
  t.is((await ferry(['apply', ...args, '--backend', 'iptables'], { netns: name })).exitCode, 0);
  t.notRegex(await runChecked(runner, 'nft', 'nft', ['list', 'tables']), /ferry/, 'the nftables tables went when iptables took over');
  t.regex(await runChecked(runner, 'save', 'iptables-save', []), /FERRY-SERVICES/);
  t.is((await ferry(['apply', ...args, '--backend', 'nftables'], { netns: name })).exitCode, 0);
  t.notRegex(await runChecked(runner, 'save', 'iptables-save', []), /FERRY/, 'and back');
  t.notRegex(await runChecked(runner, 'save', 'ip6tables-save', []), /FERRY/);
  t.is((await ferry(['apply', ...args, '--backend', 'iptables'], { netns: name })).exitCode, 0);
  // Both at once (an older ferry, or a crash between the two steps): cleanup takes both.
  t.is((await ferry(['apply', ...args, '--backend', 'nftables'], { netns: name })).exitCode, 0);
  await runChecked(runner, 'restore', 'iptables-restore', ['--noflush'], '*nat\n:FERRY-SERVICES - [0:0]\n-A PREROUTING -j FERRY-SERVICES\nCOMMIT\n');
  t.is((await ferry(['cleanup'], { netns: name })).exitCode, 0);
  t.notRegex(await runChecked(runner, 'nft', 'nft', ['list', 'ruleset']), /ferry|FERRY/);
  t.notRegex(await runChecked(runner, 'save', 'iptables-save', []), /FERRY/);
});

test('ferry trace on the example cluster: JSON with verdict, service, entry, masquerade and endpoints; text says why', async (t) => {
  const json = await ferry(['trace', '--node', 'node-a', ...example, '--from', '192.168.56.100', '--to', '192.168.56.11:30080', '-o', 'json']);
  t.is(json.exitCode, 0, json.stderr);
  t.deepEqual(JSON.parse(json.stdout), {
    verdict: 'forward', service: 'shop/api:http', entry: 'nodePort', masquerade: false,
    endpoints: [{ ip: '10.244.1.21', port: 8080, probability: 1 }],
    steps: [
      'source 192.168.56.100',
      'matches shop/api:http/tcp by its node port',
      'externalTrafficPolicy Local: this node\'s endpoints, the client\'s address kept',
      '1 endpoint, chosen by weight',
    ],
  });
  const denied = await ferry(['trace', '--node', 'node-a', ...example, '--from', '192.0.2.9', '--to', '198.51.100.10:443']);
  t.is(denied.exitCode, 0, denied.stderr);
  t.regex(denied.stdout, /by its load-balancer IP\n.*loadBalancerSourceRanges .* do not hold the source: dropped\nverdict: drop$/);
  const bad = await ferry(['trace', '--node', 'node-a', ...example, '--from', '192.0.2.9', '--to', '198.51.100.10']);
  t.is(bad.exitCode, 2);
  t.regex(bad.stderr, /^ferry: option '--to <address:port>' argument '198\.51\.100\.10' is invalid\. --to "198\.51\.100\.10" is not ADDR:PORT/);
});
