import test from 'ava';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { applyChanges, applyIfChanged, applyRules, compareRules, stampedAs } from '../dataplane/dataplane.js';
import { applyNftables, readStamps, rulesStamp } from '../dataplane/nftables/shell.js';
import { render } from '../dataplane/render.js';
import { runChecked, type Runner } from '../dataplane/runner.js';
import { recording, throwawayNamespace } from './helpers/netns-runner.js';
import { clusterState, serviceObject, sliceObject, testConfig } from './helpers/objects.js';

const nodeRules = (endpoints: string[]) => computeNodeRules(clusterState(
  serviceObject({ clusterIPs: ['10.96.0.20', 'fd00:96::20'] }),
  sliceObject('web', endpoints.map((ip) => ({ ip }))),
), 'node-a', testConfig);
const rules = (endpoints: string[]) => render(nodeRules(endpoints), 'nftables');

/** applyIfChanged with nftables, and what it did (without the rendering it returns). */
async function applied(runner: Runner, endpoints: string[], options: { force?: boolean } = {}) {
  const { changed, added, removed } = await applyIfChanged(runner, nodeRules(endpoints), 'nftables', options);
  return { changed, added, removed };
}

test('kernel: apply writes once and then decides from the stamp, listing no rule; a change replaces the tables', async (t) => {
  const { runner: inNamespace } = await throwawayNamespace(t);
  const { runner, commands } = recording(inNamespace);
  const first = rules(['10.244.1.9']);
  t.deepEqual(await applied(runner, ['10.244.1.9']), { changed: true, added: rulesStamp(first).lines, removed: 0 });
  commands.length = 0;
  t.deepEqual(await applied(runner, ['10.244.1.9']), { changed: false, added: 0, removed: 0 }, 'the same rules rendered again');
  t.deepEqual(commands, ['nft -t -j list sets', 'nft -j list set ip ferry rules-digest', 'nft -j list set ip6 ferry rules-digest']);
  const second = rules(['10.244.1.9', '10.244.2.9']);
  t.deepEqual(await applied(runner, ['10.244.1.9', '10.244.2.9']), { changed: true, added: rulesStamp(second).lines, removed: rulesStamp(first).lines });
  const { current, desired } = await compareRules(runner, second);
  t.is(current, desired);
  t.deepEqual([...(await readStamps(runner)).values()].map((stamp) => stamp?.digest), [rulesStamp(second).digest, rulesStamp(second).digest]);
});

test('kernel: the agent\'s incremental syncs keep the stamp, so that a restart with the same rules writes nothing', async (t) => {
  const { runner } = await throwawayNamespace(t);
  const before = rules(['10.244.1.9']);
  await applyRules(runner, before);
  const after = rules(['10.244.1.9', '10.244.2.9']);
  t.is(await applyChanges(runner, before, after), 'partial');
  t.true(await stampedAs(runner, after));
  t.false((await applied(runner, ['10.244.1.9', '10.244.2.9'])).changed);
});

test('kernel: a rule changed behind the stamp: apply trusts the stamp, compareRules sees the change, --force repairs', async (t) => {
  const { runner } = await throwawayNamespace(t);
  const wanted = rules(['10.244.1.9']);
  await applied(runner, ['10.244.1.9']);
  await runChecked(runner, 'tamper', 'nft', ['add', 'rule', 'ip', 'ferry', 'reject-chain', 'drop']);
  t.false((await applied(runner, ['10.244.1.9'])).changed);
  const tampered = await compareRules(runner, wanted);
  t.not(tampered.current, tampered.desired);
  t.true(await stampedAs(runner, wanted));
  t.true((await applied(runner, ['10.244.1.9'], { force: true })).changed);
  const repaired = await compareRules(runner, wanted);
  t.is(repaired.current, repaired.desired);
});

test('kernel: tables without a stamp are compared by listing and stamped when they match; a table called ferry in another family is left alone', async (t) => {
  const { runner: inNamespace } = await throwawayNamespace(t);
  const { runner, inputs, commands } = recording(inNamespace);
  const dual = rules(['10.244.1.9']);
  await applyNftables(runner, dual.texts[0]!.text);
  inputs.length = 0;
  commands.length = 0;
  t.deepEqual(await applied(runner, ['10.244.1.9']), { changed: false, added: 0, removed: 0 });
  // The rules are loaded into a throwaway namespace to be listed there; none replaced here.
  t.false(inputs.some((input, index) => input.includes('delete table') && !commands[index]!.startsWith('unshare ')), 'no table replaced');
  t.true(await stampedAs(runner, dual));
  await runChecked(runner, 'a table of someone else', 'nft', ['add', 'table', 'inet', 'ferry']);
  t.false((await applied(runner, ['10.244.1.9'])).changed, 'decided from the stamp; another family\'s table called ferry is not ferry\'s');
  t.true((await applied(runner, ['10.244.1.8'])).changed);
  t.regex(await runChecked(runner, 'list', 'nft', ['list', 'tables']), /table inet ferry/, 'and it stays');
});

