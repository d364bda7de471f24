import { Writable } from 'node:stream';
import test from 'ava';
import { pino } from 'pino';
import { Agent } from '../controlplane/agent/agent.js';
import { defaultConfig } from '../controlplane/config/kube-proxy-config.js';
import { readNftables } from '../dataplane/nftables/shell.js';
import { runChecked, type Runner } from '../dataplane/runner.js';
import { ManualClock } from './helpers/manual-clock.js';
import { throwawayNamespace } from './helpers/netns-runner.js';
import { nodeObject, serviceObject, sliceObject } from './helpers/objects.js';
import { ViewSource } from './helpers/view-source.js';

function capturingLogger() {
  const lines: { level: number; msg: string; object?: string }[] = [];
  const stream = new Writable({ write(chunk, _encoding, done) { lines.push(JSON.parse(String(chunk))); done(); } });
  return { logger: pino({ level: 'info' }, stream), lines };
}

async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  // A bound for a hang only: a busy machine may take many seconds for a sync.
  for (let i = 0; i < 1200; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('condition never held');
}

test('kernel: the agent programs valid objects and names an invalid one in the log once, not at every sync', async (t) => {
  const { runner } = await throwawayNamespace(t);
  const bad = serviceObject({ name: 'bad', clusterIPs: ['10.96.0.99'], ports: [{ name: 'http', port: 0 }] });
  const source = new ViewSource([nodeObject('node-a'), serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }]), bad]);
  const { logger, lines } = capturingLogger();
  const synced: string[] = [];
  const agent = new Agent({
    node: 'node-a', config: { ...defaultConfig, minSyncPeriodMs: 10 }, backend: 'nftables', source, runner, logger, serve: false,
    onSynced: (kind) => synced.push(kind),
  });
  await agent.start();
  t.teardown(() => agent.stop());
  await until(() => synced.length === 1);
  t.regex(await readNftables(runner), /10\.96\.0\.20 \. tcp \. 80 : goto svc-/);
  for (let i = 0; i < 3; i++) {
    source.change([...source.current, serviceObject({ name: `more-${i}`, clusterIPs: [`10.96.0.${30 + i}`] })]);
    await until(() => synced.length === i + 2);
  }
  t.deepEqual(synced, ['full', 'partial', 'partial', 'partial']);
  // One info line per sync: its kind and size, what changed, how long it took.
  const syncLines = lines.filter((line) => line.msg === 'synced') as unknown as Array<{ level: number; kind: string; services: number; servicePorts: number; portsChanged: number; rules: number; ms: number }>;
  t.deepEqual(syncLines.map((line) => line.kind), ['full', 'partial', 'partial', 'partial']);
  t.like(syncLines.at(-1), { level: 30, services: 4, servicePorts: 4, portsChanged: 1 });
  t.true(syncLines.every((line) => line.rules > 10 && Number.isInteger(line.ms)));
  const warnings = lines.filter((line) => line.object === 'default/bad');
  t.is(warnings.length, 1, 'logged once in four syncs');
  t.regex(warnings[0]!.msg, /skipped Service default\/bad: spec\.ports\[0\]\.port/);
  t.regex(await readNftables(runner), /10\.96\.0\.32 \. tcp \. 80/);
});

test('health: not ready before the first view and the first sync, 503 when a queued change waits longer than twice syncPeriod, 200 once applied', async (t) => {
  const clock = new ManualClock();
  let kernelWorks = false;
  // A kernel that refuses everything until told otherwise; once it works, the rules compare equal.
  const runner: Runner = {
    run: async (_command, args) => (kernelWorks ? { stdout: args.includes('-j') ? '{"nftables":[]}' : '', stderr: '', exitCode: 0 } : { stdout: '', stderr: 'nft: refused', exitCode: 1 }),
  };
  let listed: () => void = () => {};
  const source = new ViewSource([nodeObject('node-a')]);
  source.start = (onChange) => new Promise<void>((resolve) => {
    listed = () => {
      ViewSource.prototype.start.call(source, onChange);
      resolve();
    };
  });
  Object.assign(source, { description: 'the API server https://192.0.2.1:6443' });
  const agent = new Agent({ node: 'node-a', config: defaultConfig, backend: 'nftables', source, runner, logger: pino({ level: 'silent' }), serve: false, clock });
  const started = agent.start();
  await clock.advance(3 * defaultConfig.syncPeriodMs);
  t.like(agent.health(), { healthy: false, live: true, state: 'waiting for the API server https://192.0.2.1:6443' }, 'an API that does not answer yet is no reason to restart');
  listed();
  await started;
  await clock.advance(0);
  t.like(agent.health(), { healthy: false, live: true }, 'a first sync that failed is not healthy');
  t.regex(agent.health().state, /the first sync failed: .*refused/);
  source.change([nodeObject('node-a'), serviceObject()]);
  await clock.advance(2 * defaultConfig.syncPeriodMs + 1);
  t.like(agent.health(), { healthy: false, live: false }, 'the change could not be applied for too long');
  kernelWorks = true;
  await clock.advance(defaultConfig.syncPeriodMs);
  t.like(agent.health(), { healthy: true, live: true, state: 'synced' });
  t.truthy(agent.health().lastUpdated);
  await agent.stop();
});

test('stop() while the source still waits for its first view ends start() without syncing', async (t) => {
  const source = new ViewSource([nodeObject('node-a')]);
  let release: () => void = () => {};
  source.start = () => new Promise<void>((resolve) => {
    release = resolve;
  });
  source.stop = async () => release();
  const runner: Runner = { run: async () => t.fail('nothing may touch the kernel') as never };
  const agent = new Agent({ node: 'node-a', config: defaultConfig, backend: 'nftables', source, runner, logger: pino({ level: 'silent' }), serve: false });
  const started = agent.start();
  await agent.stop();
  await started;
  t.false(agent.health().healthy);
  t.is(agent.syncs.full + agent.syncs.partial + agent.syncs.unchanged, 0);
});

test('kernel: the periodic full resync repairs rules someone else deleted, and stop with cleanup removes ferry\'s rules', async (t) => {
  const { runner } = await throwawayNamespace(t);
  const source = new ViewSource([nodeObject('node-a'), serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }])]);
  const synced: string[] = [];
  const agent = new Agent({
    node: 'node-a', config: { ...defaultConfig, syncPeriodMs: 300, minSyncPeriodMs: 10 }, backend: 'nftables', source, runner,
    logger: pino({ level: 'silent' }), serve: false, onSynced: (kind) => synced.push(kind),
  });
  // Stopped also when the test fails: a running agent would keep the worker alive.
  let stopped = false;
  t.teardown(() => (stopped ? undefined : agent.stop()));
  await agent.start();
  await until(() => synced.length >= 1);
  const before = await readNftables(runner);
  await runChecked(runner, 'someone else', 'nft', ['delete', 'table', 'ip', 'ferry']);
  // The kernel holds the rules again before the sync that wrote them has reported itself.
  await until(async () => (await readNftables(runner)) === before);
  await until(() => synced.indexOf('full', 1) > 0);
  t.is(synced[0], 'full', 'the first sync was full');
  await agent.stop({ cleanup: true });
  stopped = true;
  t.notRegex(await runChecked(runner, 'list', 'nft', ['list', 'tables']), /ferry/);
});

test('kernel: an agent taking over from the other backend removes that backend\'s ferry rules after its first sync', async (t) => {
  const { runner } = await throwawayNamespace(t);
  const objects = [nodeObject('node-a'), serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }])];
  for (const [before, after] of [['iptables', 'nftables'], ['nftables', 'iptables']] as const) {
    const synced: string[] = [];
    const start = async (backend: typeof before) => {
      const agent = new Agent({
        node: 'node-a', config: defaultConfig, backend, source: new ViewSource(objects), runner, logger: pino({ level: 'silent' }), serve: false,
        onSynced: (kind) => synced.push(kind),
      });
      await agent.start();
      await until(() => synced.length > 0);
      await agent.stop();
      synced.length = 0;
    };
    await start(before);
    const iptables = () => runChecked(runner, 'save', 'iptables-save', []);
    const nft = () => runChecked(runner, 'list', 'nft', ['list', 'tables']);
    t.regex(before === 'iptables' ? await iptables() : await nft(), before === 'iptables' ? /FERRY-SERVICES/ : /table ip ferry/);
    await start(after);
    t.notRegex(before === 'iptables' ? await iptables() : await nft(), before === 'iptables' ? /FERRY/ : /ferry/, `${before} → ${after}: the ${before} rules went`);
    t.regex(after === 'iptables' ? await iptables() : await nft(), after === 'iptables' ? /FERRY-SERVICES/ : /table ip ferry/, `the ${after} rules are there`);
  }
});
