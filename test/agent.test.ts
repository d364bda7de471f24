import { Writable } from 'node:stream';
import test from 'ava';
import { pino } from 'pino';
import { Agent } from '../controlplane/agent/agent.js';
import { defaultConfig } from '../controlplane/config/kube-proxy-config.js';
import type { ObjectSource } from '../controlplane/sources/source.js';
import { readNftables } from '../dataplane/nftables.js';
import { runChecked, type Runner } from '../dataplane/runner.js';
import { ManualClock } from './helpers/manual-clock.js';
import { throwawayNamespace } from './helpers/netns-runner.js';
import { nodeObject, serviceObject, sliceObject } from './helpers/objects.js';

/** A source whose objects the test sets; `change()` tells the agent. */
class TestSource implements ObjectSource {
  private onChange: () => void = () => {};
  constructor(public current: unknown[]) {}
  async start(onChange: () => void) {
    this.onChange = onChange;
  }
  objects() {
    return this.current;
  }
  async stop() {}
  change(objects: unknown[]) {
    this.current = objects;
    this.onChange();
  }
}

function capturingLogger() {
  const lines: { level: number; msg: string; object?: string }[] = [];
  const stream = new Writable({ write(chunk, _encoding, done) { lines.push(JSON.parse(String(chunk))); done(); } });
  return { logger: pino({ level: 'info' }, stream), lines };
}

async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('condition never held');
}

test('kernel: the agent programs valid objects and names an invalid one in the log once, not at every sync', async (t) => {
  const { runner } = await throwawayNamespace(t);
  const bad = serviceObject({ name: 'bad', clusterIPs: ['10.96.0.99'], ports: [{ name: 'http', port: 0 }] });
  const source = new TestSource([nodeObject('node-a'), serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }]), bad]);
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
  const warnings = lines.filter((line) => line.object === 'default/bad');
  t.is(warnings.length, 1, 'logged once in four syncs');
  t.regex(warnings[0]!.msg, /skipped Service default\/bad: spec\.ports\[0\]\.port/);
  t.regex(await readNftables(runner), /10\.96\.0\.32 \. tcp \. 80/);
});

test('health turns 503 when a queued change waits longer than twice syncPeriod, and 200 once it is applied', async (t) => {
  const clock = new ManualClock();
  let kernelWorks = false;
  // A kernel that refuses everything until told otherwise; once it works, the rules compare equal.
  const runner: Runner = { run: async () => (kernelWorks ? { stdout: '', stderr: '', exitCode: 0 } : { stdout: '', stderr: 'nft: refused', exitCode: 1 }) };
  const source = new TestSource([nodeObject('node-a')]);
  const agent = new Agent({ node: 'node-a', config: defaultConfig, backend: 'nftables', source, runner, logger: pino({ level: 'silent' }), serve: false, clock });
  await agent.start();
  await clock.advance(0);
  source.change([nodeObject('node-a'), serviceObject()]);
  t.true(agent.health().healthy, 'a change that just arrived is not a problem yet');
  await clock.advance(2 * defaultConfig.syncPeriodMs + 1);
  t.false(agent.health().healthy, 'the change could not be applied for too long');
  kernelWorks = true;
  await clock.advance(defaultConfig.syncPeriodMs);
  t.true(agent.health().healthy);
  t.truthy(agent.health().lastUpdated);
  await agent.stop();
});

test('kernel: the periodic full resync repairs rules someone else deleted, and stop with cleanup removes ferry\'s rules', async (t) => {
  const { runner } = await throwawayNamespace(t);
  const source = new TestSource([nodeObject('node-a'), serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }])]);
  const synced: string[] = [];
  const agent = new Agent({
    node: 'node-a', config: { ...defaultConfig, syncPeriodMs: 300, minSyncPeriodMs: 10 }, backend: 'nftables', source, runner,
    logger: pino({ level: 'silent' }), serve: false, onSynced: (kind) => synced.push(kind),
  });
  await agent.start();
  await until(() => synced.length >= 1);
  const before = await readNftables(runner);
  await runChecked(runner, 'someone else', 'nft', ['delete', 'table', 'ip', 'ferry']);
  await until(async () => (await readNftables(runner)) === before);
  t.true(synced.includes('full') && synced.indexOf('full', 1) > 0, `a later full sync rewrote the table: ${synced.join(', ')}`);
  await agent.stop({ cleanup: true });
  t.notRegex(await runChecked(runner, 'list', 'nft', ['list', 'tables']), /ferry/);
});
