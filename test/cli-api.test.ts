// The commands reading the cluster from an API server (--kubeconfig, --context, --master) instead of -f,
// against the fake API on 127.0.0.1 serving the example cluster; and endpoints' -o, -n and -A.
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { parse, stringify } from 'yaml';
import { FakeApi } from './helpers/fake-api.js';
import { ferry } from './helpers/cli.js';

const PATHS: Record<string, { kind: string; apiVersion: string }> = {
  '/api/v1/services': { kind: 'Service', apiVersion: 'v1' },
  '/apis/discovery.k8s.io/v1/endpointslices': { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' },
  '/api/v1/nodes': { kind: 'Node', apiVersion: 'v1' },
  '/apis/networking.k8s.io/v1/servicecidrs': { kind: 'ServiceCIDR', apiVersion: 'networking.k8s.io/v1' },
};
const SERVICES = '/api/v1/services';
const SLICES = '/apis/discovery.k8s.io/v1/endpointslices';
const CIDRS = '/apis/networking.k8s.io/v1/servicecidrs';
const PROXIED = '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless';

type Obj = { kind: string; metadata: { name: string; namespace?: string } } & Record<string, unknown>;

async function exampleObjects(): Promise<Obj[]> {
  return (parse(await readFile('examples/cluster.yaml', 'utf8')) as { items: Obj[] }).items;
}

/** The fake API serving `objects`; without ServiceCIDRs at all (a 404, as before Kubernetes 1.33) when `cidrs` is false. */
async function fakeApi(t: ExecutionContext, objects: Obj[], options: { cidrs?: boolean } = {}): Promise<FakeApi> {
  const paths = Object.fromEntries(Object.entries(PATHS).filter(([path]) => options.cidrs !== false || path !== CIDRS));
  const api = new FakeApi(paths);
  await api.start();
  t.teardown(() => api.stop());
  for (const object of objects) {
    const path = Object.entries(paths).find(([, entry]) => entry.kind === object.kind)?.[0];
    if (path) api.put(path, object);
  }
  return api;
}

/** A port nothing listens on: bound once, then closed. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function tempDir(t: ExecutionContext): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'ferry-api-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  return directory;
}

/** A kubeconfig with one context per server (plain HTTP, so without TLS verification), `current` as its current-context. */
async function kubeconfig(directory: string, contexts: Record<string, { server: string; namespace?: string }>, current: string): Promise<string> {
  const file = join(directory, 'kubeconfig');
  await writeFile(file, stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': current,
    clusters: Object.entries(contexts).map(([name, { server }]) => ({ name, cluster: { server, 'insecure-skip-tls-verify': true } })),
    users: [{ name: 'user', user: {} }],
    contexts: Object.entries(contexts).map(([name, { namespace }]) => ({ name, context: { cluster: name, user: 'user', ...(namespace ? { namespace } : {}) } })),
  }));
  return file;
}

/** The fake API with the example cluster, and a kubeconfig whose current context `dead` points at a dead port, `live` at the API (namespace shop). */
async function exampleCluster(t: ExecutionContext) {
  const api = await fakeApi(t, await exampleObjects());
  const dead = `http://127.0.0.1:${await deadPort()}`;
  const file = await kubeconfig(await tempDir(t), { dead: { server: dead }, live: { server: api.url, namespace: 'shop' } }, 'dead');
  return { api, dead, file, live: ['--kubeconfig', file, '--context', 'live'] };
}

const example = ['-f', 'examples/cluster.yaml'];

test('ferry render --kubeconfig prints what render -f of the same objects prints, listing with the agent\'s selectors', async (t) => {
  const { api, live } = await exampleCluster(t);
  for (const backend of ['nftables', 'iptables', 'ebpf']) {
    const fromFile = await ferry(['render', '--node', 'node-a', '--backend', backend, ...example]);
    const fromApi = await ferry(['render', '--node', 'node-a', '--backend', backend, ...live]);
    t.is(fromApi.exitCode, 0, fromApi.stderr);
    t.is(fromApi.stderr, fromFile.stderr, backend);
    t.true(fromApi.stdout.length > 1000, backend);
    t.is(fromApi.stdout, fromFile.stdout, backend);
  }
  for (const path of [SERVICES, SLICES]) {
    const lists = api.requests.filter((request) => request.path === path);
    t.true(lists.length > 0, path);
    t.true(lists.every((request) => !request.watch && request.labelSelector === PROXIED), path);
  }
  t.true(api.requests.some((request) => request.path === CIDRS), 'the ServiceCIDRs are listed');
  const trace = ['--from', '192.168.56.100', '--to', '192.168.56.11:30080', '-o', 'json'];
  const traced = await ferry(['trace', '--node', 'node-a', ...live, ...trace]);
  t.is(traced.exitCode, 0, traced.stderr);
  t.is(JSON.parse(traced.stdout).service, 'shop/api:http');
  t.is(traced.stdout, (await ferry(['trace', '--node', 'node-a', ...example, ...trace])).stdout);
});

test('an API without ServiceCIDRs counts as none of them, as for the agent', async (t) => {
  const objects = await exampleObjects();
  const api = await fakeApi(t, objects, { cidrs: false });
  const directory = await tempDir(t);
  const file = await kubeconfig(directory, { fake: { server: api.url } }, 'fake');
  const withoutCIDRs = join(directory, 'cluster.yaml');
  await writeFile(withoutCIDRs, stringify({ apiVersion: 'v1', kind: 'List', items: objects.filter((object) => object.kind !== 'ServiceCIDR') }));
  const fromApi = await ferry(['render', '--node', 'node-a', '--kubeconfig', file]);
  t.is(fromApi.exitCode, 0, fromApi.stderr);
  t.true(api.requests.some((request) => request.path === CIDRS), 'asked, and told 404');
  t.is(fromApi.stdout, (await ferry(['render', '--node', 'node-a', '-f', withoutCIDRs])).stdout);
  t.not(fromApi.stdout, (await ferry(['render', '--node', 'node-a', ...example])).stdout, 'the example\'s ServiceCIDR shows in the rules');
});

test('--context picks the kubeconfig\'s context; an unknown one is an error naming it and the kubeconfig; --master replaces the server', async (t) => {
  const { api, dead, file } = await exampleCluster(t);
  const expected = (await ferry(['render', '--node', 'node-a', ...example])).stdout;
  const live = await ferry(['render', '--node', 'node-a', '--kubeconfig', file, '--context', 'live']);
  t.is(live.exitCode, 0, live.stderr);
  t.is(live.stdout, expected);
  const current = await ferry(['render', '--node', 'node-a', '--kubeconfig', file]);
  t.is(current.exitCode, 2, 'the current context is the dead one');
  t.regex(current.stderr, new RegExp(`^ferry: the API server ${dead}: listing Services \\(/api/v1/services\\) failed: connect ECONNREFUSED`, 'm'));
  const explicit = await ferry(['render', '--node', 'node-a', '--kubeconfig', file, '--context', 'dead']);
  t.is(explicit.exitCode, 2);
  t.regex(explicit.stderr, new RegExp(`the API server ${dead}: `));
  const unknown = await ferry(['render', '--node', 'node-a', '--kubeconfig', file, '--context', 'staging']);
  t.is(unknown.exitCode, 2);
  t.is(unknown.stdout, '');
  t.is(unknown.stderr, `ferry: kubeconfig ${file}: no context "staging" (it has "dead", "live")`);
  const master = await ferry(['render', '--node', 'node-a', '--kubeconfig', file, '--context', 'dead', '--master', api.url]);
  t.is(master.exitCode, 0, master.stderr);
  t.is(master.stdout, expected);
});

test('ferry endpoints from the API: -o json and yaml hold the same records, -o wide adds columns, -n, -A and the context\'s namespace', async (t) => {
  const { live } = await exampleCluster(t);
  const run = async (...args: string[]) => {
    const result = await ferry(['endpoints', ...args]);
    t.is(result.exitCode, 0, `${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  };
  const records = JSON.parse(await run('-A', ...live, '--node', 'node-a', '-o', 'json')) as { node: string; endpoints: Record<string, unknown>[] };
  t.is(records.node, 'node-a');
  t.deepEqual(records, JSON.parse(await run('-A', ...example, '--node', 'node-a', '-o', 'json')), 'the same as from the file');
  t.deepEqual(parse(await run('-A', ...live, '--node', 'node-a', '-o', 'yaml')), records, 'yaml: the same records');
  t.deepEqual(new Set(records.endpoints.map((record) => record.namespace)), new Set(['kube-system', 'shop', 'telemetry']), '-A: every namespace');
  t.deepEqual(records.endpoints.find((record) => record.endpoint === '[fd00:244:0:1::11]:8080'), {
    service: 'shop/web', namespace: 'shop', name: 'web', port: { name: 'http', port: 80, protocol: 'TCP' }, family: 'IPv6', clusterIP: 'fd00:96::a14',
    endpoint: '[fd00:244:0:1::11]:8080', ip: 'fd00:244:0:1::11', targetPort: 8080, node: 'node-a', zone: null,
    ready: true, serving: true, terminating: false, source: 'EndpointSlice', slice: 'web-ipv6-p2x9d', hints: { zones: [], nodes: [] },
    local: true, topology: null, usedBy: ['cluster'],
  });

  const rows = (text: string) => text.trim().split('\n').map((line) => line.split(/\s{2,}/));
  const table = rows(await run(...live));
  t.deepEqual(table[0], ['SERVICE', 'PORT', 'ENDPOINT', 'NODE', 'READY', 'SERVING', 'TERMINATING', 'SOURCE', 'HINTS']);
  t.true(table.length > 5);
  t.true(table.slice(1).every((row) => row[0]!.startsWith('shop/')), 'without -n: the context\'s namespace');
  t.deepEqual(table, rows(await run('-n', 'shop', ...example)), 'the same table as from the file');
  const wide = rows(await run(...live, '-o', 'wide'));
  t.deepEqual(wide[0], [...table[0]!, 'FAMILY', 'CLUSTER-IP', 'SLICE', 'ZONE']);
  t.deepEqual(wide.map((row) => row.slice(0, 9)), table, 'wide: the same rows, more columns');
  t.deepEqual(wide.find((row) => row[2] === '[fd00:244:0:1::11]:8080')?.slice(9), ['IPv6', 'fd00:96::a14', 'web-ipv6-p2x9d', '-']);
  const telemetry = rows(await run('-n', 'telemetry', ...live));
  t.true(telemetry.length > 1);
  t.true(telemetry.slice(1).every((row) => row[0] === 'telemetry/collector'), '-n wins over the context');
  const all = rows(await run('-A', ...live));
  t.is(all.length - 1, records.endpoints.length);
  t.true(all.some((row) => row[0] === 'kube-system/kube-dns'));
  const named = rows(await run('web', ...live, '-o', 'wide'));
  t.true(named.length > 1);
  t.true(named.slice(1).every((row) => row[0] === 'shop/web'));
  const byName = await ferry(['endpoints', 'web', '-A', ...live]);
  t.is(byName.exitCode, 2);
  t.regex(byName.stderr, /^ferry: a Service cannot be named across all namespaces/);
  const missing = await ferry(['endpoints', 'nope', ...live]);
  t.is(missing.exitCode, 2);
  t.regex(missing.stderr, /^ferry: Service shop\/nope is not in the API server http:\/\/127\.0\.0\.1:\d+$/m);
});

test('-f and --kubeconfig: exactly one of them, each mistake one line', async (t) => {
  const file = await kubeconfig(await tempDir(t), { x: { server: `http://127.0.0.1:${await deadPort()}` } }, 'x');
  const cases: [string[], RegExp][] = [
    [[...example, '--kubeconfig', file], /^ferry: option '-f, --file <path>' cannot be used with option '--kubeconfig <file>' \(see --help\)$/],
    [[...example, '--context', 'x'], /^ferry: option '-f, --file <path>' cannot be used with option '--context <name>' \(see --help\)$/],
    [[], /^ferry: required option '-f, --file <path>' not specified, nor --kubeconfig <file> to read a cluster's API server \(see --help\)$/],
    [['--context', 'x'], /^ferry: option '--context <name>' picks a context of a kubeconfig: give --kubeconfig <file> too \(see --help\)$/],
  ];
  for (const command of [['render', '--node', 'node-a'], ['diff', '--node', 'node-a'], ['apply', '--node', 'node-a'],
    ['trace', '--node', 'node-a', '--from', '192.168.56.100', '--to', '10.96.0.10:53'], ['endpoints']]) {
    for (const [args, message] of cases) {
      const result = await ferry([...command, ...args]);
      t.is(result.exitCode, 2, `${command[0]} ${args.join(' ')}: ${result.stderr}`);
      t.is(result.stdout, '');
      t.regex(result.stderr, message, `${command[0]} ${args.join(' ')}`);
    }
  }
});

test('an unreachable or failing API server: exit 2 and one line naming the server and the resource', async (t) => {
  const port = await deadPort();
  const directory = await tempDir(t);
  const file = await kubeconfig(directory, { x: { server: `http://127.0.0.1:${port}` } }, 'x');
  for (const command of [['render', '--node', 'node-a'], ['endpoints', '-A']]) {
    const result = await ferry([...command, '--kubeconfig', file]);
    t.is(result.exitCode, 2, command[0]);
    t.is(result.stdout, '');
    t.regex(result.stderr, new RegExp(`^ferry: the API server http://127\\.0\\.0\\.1:${port}: listing Services \\(/api/v1/services\\) failed: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}$`), command[0]);
  }
  const api = await fakeApi(t, await exampleObjects());
  const failing = await kubeconfig(await tempDir(t), { fake: { server: api.url } }, 'fake');
  api.unavailable = true;
  const result = await ferry(['render', '--node', 'node-a', '--kubeconfig', failing]);
  t.is(result.exitCode, 2);
  t.is(result.stderr, `ferry: the API server ${api.url}: listing Services (/api/v1/services) failed: HTTP 503`);
});
