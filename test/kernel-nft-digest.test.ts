import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { createTwoFilesPatch } from 'diff';
import { applyRules, diffRules } from '../dataplane/dataplane.js';
import { buildNftDigest, parseDigests } from '../dataplane/nftables/digest.js';
import { nftOf } from '../dataplane/nftables/render.js';
import { compareByListing } from '../dataplane/nftables/shell.js';
import { execaRunner, runChecked, type Runner } from '../dataplane/runner.js';
import { renderScenario } from './helpers/golden.js';
import { throwawayNamespace } from './helpers/netns-runner.js';

/** The added and removed lines of a unified diff, without its headers: what it says changed. */
const changedLines = (patch: string) => patch.split('\n').filter((line) => /^[+-]/.test(line) && !/^(\+\+\+|---) /.test(line)).sort();

/** The diff that listing both sides whole gives: what the digest comparison must agree with. */
async function diffByListing(runner: Runner, script: string): Promise<string> {
  const { current, desired } = await compareByListing(runner, script);
  return current === desired ? '' : createTwoFilesPatch('kernel', 'desired', current, desired, '', '', { context: 3 });
}

async function appliedScenario(runner: Runner) {
  const { rendered } = await renderScenario('default', 'nftables');
  await applyRules(runner, rendered);
  const chains = nftOf(rendered).tables.find((table) => table.family === 'ip')!.ports.flatMap((part) => part.chainNames);
  return { rendered, script: rendered.texts[0]!.text, serviceChains: chains.filter((name) => name.startsWith('svc-')) };
}

test('kernel: nft-digest reads each object once, and names an anonymous set by its content, not by the name nft gave it', async (t) => {
  const helper = await buildNftDigest();
  const { runner: fresh } = await throwawayNamespace(t);
  const { runner: reused } = await throwawayNamespace(t);
  const table = (rule: string) => `table ip ferry {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.0.1, 10.0.0.2 }\n\t}\n\tchain c {\n\t\t${rule}\n\t}\n}\n`;
  await runChecked(fresh, 'load', 'nft', ['-f', '-'], table('ip saddr { 10.1.0.1, 10.1.0.2 } accept'));
  // Another rule's anonymous set made first and dropped last: the same rule's set gets another name here.
  await runChecked(reused, 'load', 'nft', ['-f', '-'], table('ip saddr { 10.1.0.1, 10.1.0.2 } accept').replace('\tchain c {', '\tchain d {\n\t\tip daddr { 10.8.0.1, 10.8.0.2 } drop\n\t}\n\tchain c {'));
  await runChecked(reused, 'drop the other chain', 'nft', ['-f', '-'], 'flush chain ip ferry d\ndelete chain ip ferry d\n');
  const names = async (runner: Runner) => (await runChecked(runner, 'list', 'nft', ['--debug=netlink', 'list', 'chain', 'ip', 'ferry', 'c'])).match(/__set\d+/g) ?? [];
  t.notDeepEqual(await names(fresh), await names(reused), 'nft named the two anonymous sets differently');

  const digests = async (runner: Runner) => parseDigests(await runChecked(runner, 'digest', helper, ['ip', 'ferry', 'ip6', 'ferry']));
  const one = await digests(fresh);
  const other = await digests(reused);
  t.deepEqual([...one.keys()].sort(), ['ip chain c', 'ip set s', 'ip table ferry']);
  t.deepEqual(one, other);

  await runChecked(reused, 'change the anonymous set', 'nft', ['-f', '-'], 'flush chain ip ferry c\nadd rule ip ferry c ip saddr { 10.1.0.1, 10.1.0.3 } accept\n');
  await runChecked(reused, 'change the named set', 'nft', ['delete', 'element', 'ip', 'ferry', 's', '{ 10.0.0.2 }']);
  const changed = await digests(reused);
  t.not(changed.get('ip chain c')!.digest, one.get('ip chain c')!.digest, 'another element in the rule\'s anonymous set');
  t.not(changed.get('ip set s')!.digest, one.get('ip set s')!.digest, 'an element fewer');
  t.is(changed.get('ip table ferry')!.digest, one.get('ip table ferry')!.digest);
});

test('kernel: counters\' numbers are state, not rules: traffic through a counter changes no digest', async (t) => {
  const helper = await buildNftDigest();
  const { runner } = await throwawayNamespace(t);
  await runChecked(runner, 'load', 'nft', ['-f', '-'], 'table ip ferry {\n\tchain out {\n\t\ttype filter hook output priority 0; policy accept;\n\t\tcounter\n\t}\n}\n');
  const before = await runChecked(runner, 'digest', helper, ['ip', 'ferry']);
  const send = "const s = require('node:dgram').createSocket('udp4'); s.send('x', 9, '127.0.0.1', () => s.close());";
  await runChecked(runner, 'traffic', process.execPath, ['-e', send]);
  t.regex(await runChecked(runner, 'list', 'nft', ['list', 'chain', 'ip', 'ferry', 'out']), /counter packets [1-9]/);
  t.is(await runChecked(runner, 'digest', helper, ['ip', 'ferry']), before);
});

test('kernel: nftables diff in step is empty; a changed rule, a removed element and a foreign chain show alone, as a whole listing shows them', async (t) => {
  const { runner } = await throwawayNamespace(t);
  const { rendered, script, serviceChains } = await appliedScenario(runner);
  t.is(await diffRules(runner, rendered), '');

  const [tampered, untouched] = [serviceChains[0]!, serviceChains[1]!];
  await runChecked(runner, 'tamper', 'nft', ['-f', '-'], `add rule ip ferry ${tampered} meta l4proto udp drop\ndelete element ip ferry cluster-ips { 10.96.0.10 }\nadd chain ip ferry intruder\n`);
  const listings: string[] = [];
  const patch = await diffRules(runner, rendered, (why) => listings.push(why));
  t.deepEqual(listings, [], 'three objects differ: listed one by one');
  t.true(changedLines(patch).includes('-\t\tmeta l4proto udp drop'));
  t.true(changedLines(patch).includes('+\t\t\t10.96.0.10,'));
  t.true(changedLines(patch).includes('-\tchain intruder {'));
  t.true(patch.includes(`chain ${tampered} {`), 'the changed chain is shown');
  t.false(patch.includes(`chain ${untouched} {`), 'a chain that did not change is not');
  t.deepEqual(changedLines(patch), changedLines(await diffByListing(runner, script)));
});

test('kernel: nftables diff finds a dormant table and many changed chains, listing both sides whole then', async (t) => {
  const { runner } = await throwawayNamespace(t);
  const { rendered, script, serviceChains } = await appliedScenario(runner);
  t.true(serviceChains.length > 8);
  await runChecked(runner, 'flush many', 'nft', ['-f', '-'], serviceChains.map((chain) => `flush chain ip ferry ${chain}\n`).join(''));
  const many = await diffRules(runner, rendered);
  t.is(changedLines(many).filter((line) => line.startsWith('+')).length > serviceChains.length, true, 'every flushed chain\'s rules come back');
  t.deepEqual(changedLines(many), changedLines(await diffByListing(runner, script)));

  await applyRules(runner, rendered);
  await runChecked(runner, 'dormant', 'nft', ['add', 'table', 'ip', 'ferry', '{ flags dormant; }']);
  const dormant = await diffRules(runner, rendered);
  t.deepEqual(changedLines(dormant), ['-\tflags dormant']);
});

test.serial('kernel: without a C compiler diff lists both sides whole and says why', async (t) => {
  const { runner: inNamespace } = await throwawayNamespace(t);
  const { rendered, serviceChains } = await appliedScenario(inNamespace);
  await runChecked(inNamespace, 'tamper', 'nft', ['add', 'rule', 'ip', 'ferry', serviceChains[0]!, 'drop']);
  const cache = await mkdtemp(join(tmpdir(), 'ferry-no-cc-'));
  const previous = process.env.FERRY_CACHE_DIR;
  process.env.FERRY_CACHE_DIR = cache;
  t.teardown(async () => {
    if (previous === undefined) delete process.env.FERRY_CACHE_DIR;
    else process.env.FERRY_CACHE_DIR = previous;
    await rm(cache, { recursive: true, force: true });
  });
  const withoutCompiler: Runner = { run: (command, args, input) => (command === 'cc' ? execaRunner.run('false', []) : inNamespace.run(command, args, input)) };
  const listings: string[] = [];
  const patch = await diffRules(withoutCompiler, rendered, (why) => listings.push(why));
  t.is(listings.length, 1);
  t.regex(listings[0]!, /nft-digest helper could not be built/);
  t.deepEqual(changedLines(patch), ['-\t\tdrop']);
});
