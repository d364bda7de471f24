// The agent as a node runs it: a whole `ferry agent` process inside a network namespace, started from a
// kubeadm config.conf whose kubeconfig names the API server's own address, with no service rules in
// the kernel (nothing serves the `kubernetes` Service's cluster IP yet), stopped by signals.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { packageRoot } from '../controlplane/package-root.js';
import { runChecked } from '../dataplane/runner.js';
import { runnerIn, throwawayNamespace } from './helpers/netns-runner.js';
import { nodeObject, serviceObject, sliceObject } from './helpers/objects.js';

const root = packageRoot();
const API = '192.0.2.10';

/** A namespace with loopback up and the API server's own address on it. */
async function nodeNamespace(t: ExecutionContext) {
  const { name, runner } = await throwawayNamespace(t);
  for (const args of [['link', 'set', 'lo', 'up'], ['addr', 'add', `${API}/32`, 'dev', 'lo']]) {
    await runChecked(runner, 'setting up the node namespace failed', 'ip', args);
  }
  const directory = await mkdtemp(join(tmpdir(), 'ferry-agent-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  return { name, runner, directory };
}

/** kubeadm's config.conf, its clientConnection.kubeconfig pointing at a kubeconfig for `server`. */
async function kubeadmConfig(directory: string, server: string): Promise<string> {
  const kubeconfig = join(directory, 'kubeconfig.conf');
  await writeFile(kubeconfig, [
    'apiVersion: v1', 'kind: Config',
    // The fake API speaks plain HTTP, which client-node allows only without TLS verification.
    `clusters:\n- cluster:\n    server: ${server}\n    insecure-skip-tls-verify: true\n  name: default`,
    'contexts:\n- context:\n    cluster: default\n    user: default\n  name: default',
    'current-context: default', 'users:\n- name: default\n  user: {}', '',
  ].join('\n'));
  const config = join(directory, 'config.conf');
  const stock = await readFile(join(root, 'test/fixtures/kubeadm-config.conf'), 'utf8');
  await writeFile(config, stock.replace('kubeconfig: /var/lib/kube-proxy/kubeconfig.conf', `kubeconfig: ${kubeconfig}`));
  return config;
}

interface Process {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts a command inside the namespace; killed when the test ends, also when it fails. */
function start(t: ExecutionContext, netns: string, args: string[], env: Record<string, string> = {}): Process {
  const child = spawn('ip', ['netns', 'exec', netns, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += String(chunk)));
  child.stderr!.on('data', (chunk: Buffer) => (output += String(chunk)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) t.log(`${args.slice(1, 3).join(' ')} output:\n${output}`);
    child.kill('SIGKILL');
  });
  return { child, output: () => output, exited };
}

function agent(t: ExecutionContext, netns: string, args: string[]): Process {
  // In a Pod these point at the `kubernetes` Service's cluster IP, which no rule serves yet.
  return start(t, netns, [process.execPath, join(root, 'bin/ferry.js'), 'agent', ...args], { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443', FERRY_LOG_LEVEL: 'debug' });
}

/** Polls until `probe` gives a value; fails well before ava's timeout, so that the teardowns run. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, process?: Process): Promise<T> {
  const deadline = performance.now() + 60_000;
  while (performance.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    if (process && process.child.exitCode !== null) throw new Error(`the agent exited while waiting until ${what}:\n${process.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`gave up waiting until ${what}${process ? `:\n${process.output()}` : ''}`);
}

/** GET from inside the namespace: status and body, or undefined while nothing answers. */
async function get(netns: string, url: string): Promise<{ status: number; body: string } | undefined> {
  const script = 'fetch(process.argv[1]).then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })), () => console.log("null"))';
  const { stdout } = await runnerIn(netns).run(process.execPath, ['-e', script, url]);
  return (JSON.parse(stdout) as { status: number; body: string } | null) ?? undefined;
}

/** Sends a signal and resolves with how long the process took to exit, and its exit code. */
async function stopWith(process: Process, signal: NodeJS.Signals): Promise<{ ms: number; code: number | null }> {
  const started = performance.now();
  process.child.kill(signal);
  const code = await process.exited;
  return { ms: performance.now() - started, code };
}

const kubernetesService = () => [
  serviceObject({ name: 'kubernetes', clusterIPs: ['10.96.0.1'], ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 6443 }] }),
  sliceObject('kubernetes', [{ ip: API }], { name: 'kubernetes', ports: [{ name: 'https', port: 6443, protocol: 'TCP' }] }),
];

test('kernel: an agent started from kubeadm\'s config.conf reaches the API only through its kubeconfig, answers health before its first list, syncs, and stops on SIGTERM leaving its rules', async (t) => {
  const { name, runner, directory } = await nodeNamespace(t);
  const config = await kubeadmConfig(directory, `http://${API}:6443`);
  const objects = join(directory, 'objects.json');
  const otherProxy = serviceObject({ name: 'other-proxy', clusterIPs: ['10.96.0.50'] });
  (otherProxy.metadata as Record<string, unknown>).labels = { 'service.kubernetes.io/service-proxy-name': 'someone-else' };
  await writeFile(objects, JSON.stringify([nodeObject('node-a'), ...kubernetesService(), otherProxy]));

  const ferry = agent(t, name, [`--config=${config}`, '--hostname-override=node-a']);
  // Up before the API: alive, not ready, and saying what it waits for.
  const waiting = await until('/healthz answers', () => get(name, 'http://127.0.0.1:10256/healthz'), ferry);
  t.is(waiting.status, 503);
  t.is(JSON.parse(waiting.body).state, `waiting for the API server http://${API}:6443`);
  t.is((await get(name, 'http://127.0.0.1:10256/livez'))?.status, 200);
  t.notRegex(await runChecked(runner, 'list', 'nft', ['list', 'tables']), /ferry/, 'nothing programmed before the first list');

  const api = start(t, name, [process.execPath, join(root, 'dist/test/helpers/fake-api-server.js'), API, '6443', objects]);
  await until('the fake API listens', async () => (api.output().includes('listening') ? true : undefined), api);
  await until('/healthz says 200', async () => ((await get(name, 'http://127.0.0.1:10256/healthz'))?.status === 200 ? true : undefined), ferry);
  const rules = await runChecked(runner, 'list', 'nft', ['list', 'table', 'ip', 'ferry']);
  t.regex(rules, /10\.96\.0\.1 \. tcp \. 443 : goto svc-/, 'the kubernetes Service is served');
  t.notRegex(rules, /10\.96\.0\.50/, 'a Service of another proxy is not');

  const { ms, code } = await stopWith(ferry, 'SIGTERM');
  t.is(code, 0);
  t.true(ms < 2000, `stopped in ${Math.round(ms)} ms`);
  t.regex(await runChecked(runner, 'list', 'nft', ['list', 'table', 'ip', 'ferry']), /10\.96\.0\.1 \. tcp \. 443/, 'the rules stay, as kube-proxy leaves them');
});

test('kernel: SIGTERM and SIGINT end an agent within 2 s while the API server accepts connections and never answers', async (t) => {
  const { name, directory } = await nodeNamespace(t);
  const config = await kubeadmConfig(directory, `http://${API}:6443`);
  const silent = start(t, name, [process.execPath, '-e', `require('net').createServer(() => {}).listen(6443, '${API}', () => console.log('listening'))`]);
  await until('the silent server listens', async () => (silent.output().includes('listening') ? true : undefined), silent);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const ferry = agent(t, name, [`--config=${config}`, '--hostname-override=node-a']);
    await until('/livez answers', () => get(name, 'http://127.0.0.1:10256/livez'), ferry);
    const { ms, code } = await stopWith(ferry, signal);
    t.is(code, 0, signal);
    t.true(ms < 2000, `${signal}: stopped in ${Math.round(ms)} ms`);
  }
});

test('kernel: SIGTERM during a large first sync ends the agent within 2 s, and the kernel holds either no ferry rules or all of them', async (t) => {
  const { name, runner, directory } = await nodeNamespace(t);
  const manifests = join(directory, 'manifests');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(manifests);
  const services = Array.from({ length: 3000 }, (_, i) => [
    serviceObject({ name: `svc-${i}`, clusterIPs: [`10.96.${Math.floor(i / 250)}.${(i % 250) + 2}`] }),
    sliceObject(`svc-${i}`, [{ ip: `10.244.1.${(i % 200) + 2}`, node: 'node-a' }, { ip: `10.244.2.${(i % 200) + 2}`, node: 'node-b' }]),
  ]).flat();
  await writeFile(join(manifests, 'cluster.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [nodeObject('node-a'), nodeObject('node-b'), ...services] }));
  const ferry = agent(t, name, ['--node', 'node-a', '--manifests', manifests]);
  // The first sync begins as the agent reports it started.
  await until('the agent started', async () => (ferry.output().includes('"msg":"agent started"') ? true : undefined), ferry);
  const { ms, code } = await stopWith(ferry, 'SIGTERM');
  t.is(code, 0);
  t.true(ms < 2000, `stopped in ${Math.round(ms)} ms`);
  t.log(ferry.output().includes('"msg":"synced"') ? 'the sync had finished' : 'stopped during the sync');
  const tables = await runChecked(runner, 'list', 'nft', ['list', 'tables']);
  if (/table ip ferry/.test(tables)) {
    // Whatever the kernel holds is the whole transaction: every Service's cluster IP is there.
    const listed = await runChecked(runner, 'list', 'nft', ['list', 'map', 'ip', 'ferry', 'service-ips']);
    t.is((listed.match(/ : goto svc-/g) ?? []).length, 3000);
  } else {
    t.pass('the transaction was not committed');
  }
});
