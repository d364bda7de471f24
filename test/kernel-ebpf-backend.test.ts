import test, { type ExecutionContext } from 'ava';
import { applyChanges, applyIfChanged, cleanupRules, diffRules, reassertRules, startSync } from '../dataplane/dataplane.js';
import { BACKENDS } from '../dataplane/backends.js';
import { MAPS } from '../dataplane/ebpf/layout.js';
import { MapWriter } from '../dataplane/ebpf/map-writer.js';
import { render } from '../dataplane/render.js';
import type { RenderedRules } from '../dataplane/backend.js';
import { execaRunner, runChecked, type Runner } from '../dataplane/runner.js';
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { renderScenario } from './helpers/golden.js';
import { bpfWorkspace } from './helpers/bpf-workspace.js';
import { throwawayNamespace } from './helpers/netns-runner.js';
import { ferry } from './helpers/cli.js';

// The eBPF backend as the agent and the CLI use it, in a namespace with two interfaces and a cgroup and
// bpffs of the test's own: apply, a second apply that writes nothing, a change behind ferry's back that
// diff shows and the resync repairs, and a cleanup that leaves nothing of ferry's and everything else.
const FOREIGN_NFT = 'table inet other {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n';

/** A namespace, a cgroup and a bpffs of the test's own, and the default scenario's eBPF rendering. */
async function exampleNode(t: ExecutionContext) {
  const { runner } = await throwawayNamespace(t);
  const { cgroup, pinDir } = await bpfWorkspace(t);
  const { rendered: example } = await renderScenario('default', 'ebpf');
  return { runner, cgroup, pinDir, example, placement: { ebpf: { cgroupRoot: cgroup, bpfRoot: pinDir } } };
}

/** The rendering with a companion script that nft parses but the kernel refuses (a nat chain on a hook it does not take). */
function refusingCompanion(rendered: RenderedRules): RenderedRules {
  const companion = rendered.ebpf!.companion.replace(/type nat hook prerouting/, 'type nat hook ingress');
  if (companion === rendered.ebpf!.companion) throw new Error('the companion script has no nat prerouting chain to break');
  return { ...rendered, ebpf: { ...rendered.ebpf!, companion, id: Symbol('refused') } };
}

test('kernel: ebpf apply, a second apply writes nothing, a tampered map shows in diff and the resync repairs it, cleanup leaves only others\' objects', async (t) => {
  const { runner, cgroup, pinDir, example, placement } = await exampleNode(t);
  await runChecked(runner, 'veths', 'ip', ['link', 'add', 'fe0', 'type', 'veth', 'peer', 'name', 'fe1']);
  for (const device of ['fe0', 'fe1']) await runChecked(runner, 'up', 'ip', ['link', 'set', device, 'up']);
  await runChecked(runner, 'address', 'ip', ['address', 'add', '192.168.56.11/24', 'dev', 'fe0']);
  await runChecked(runner, 'foreign rules', 'nft', ['-f', '-'], FOREIGN_NFT);
  const rendered = render(example.ebpf!.rules, 'ebpf', placement);

  t.not(await diffRules(runner, rendered), '', 'before apply the kernel differs');
  const first = await applyIfChanged(runner, example.ebpf!.rules, 'ebpf', { backend: placement });
  t.true(first.changed);
  t.true(first.added > 50, `${first.added} map entries written`);
  t.is(await diffRules(runner, rendered), '', 'after apply the kernel holds the maps, attachments and companion table');
  t.regex((await BACKENDS.ebpf.diff(runner, rendered)).current, /^# ferry eBPF maps for node node-a: as planned \(\d+ socket and \d+ packet frontends, \d+ slots\)/, 'told from the summary, the slots by their digest');
  const again = await applyIfChanged(runner, example.ebpf!.rules, 'ebpf', { backend: placement });
  t.deepEqual([again.changed, again.added, again.removed], [false, 0, 0], 'a second apply (a restart) writes nothing');
  const devices = JSON.parse(await runChecked(runner, 'net', 'bpftool', ['-j', 'net', 'show'])) as Array<{ tc: Array<{ devname: string; name: string }> }>;
  t.deepEqual(devices[0]!.tc.filter((filter) => filter.name.startsWith('ferry_ingress')).map((filter) => filter.devname).sort(), ['fe0', 'fe1']);

  // Someone deletes a frontend and rewrites a slot behind ferry's back.
  const writer = await MapWriter.start();
  try {
    const frontends = await writer.open(MAPS.frontends, join(pinDir, 'maps', 'frontends'));
    await writer.delete(frontends, [{ ip: '10.96.10.30', port: 8080, protocol: 'tcp' }]);
    const slots = await writer.open(MAPS.slots, join(pinDir, 'maps', 'slots'));
    const [key, slot] = (await writer.dump(slots))[0]!;
    await writer.update(slots, [[key, { ...slot, ip: '10.9.9.9' }]]);
  } finally {
    await writer.close();
  }
  t.regex((await BACKENDS.ebpf.diff(runner, rendered)).current, /^# ferry eBPF maps for node node-a, sorted/, 'a difference: both sides listed');
  const tampered = await diffRules(runner, rendered);
  t.regex(tampered, /^\+ {2}10\.96\.10\.30:8080\/tcp serve/m, 'the deleted frontend shows');
  t.regex(tampered, /10\.9\.9\.9/, 'the rewritten slot shows');
  await reassertRules(runner, rendered);
  t.is(await diffRules(runner, rendered), '', 'the periodic resync reads the maps back and repairs them');
  // Someone empties a chain of the companion table: its digest differs, diff lists it, the resync reloads it.
  await runChecked(runner, 'tamper', 'nft', ['flush', 'chain', 'inet', 'ferry-ebpf', 'reject-chain']);
  t.regex(await diffRules(runner, rendered), /^\+\s+reject$/m, 'the emptied chain shows');
  await reassertRules(runner, rendered);
  t.is(await diffRules(runner, rendered), '', 'the resync compares the companion table by its digests and reloads it');

  await cleanupRules(runner, 'ebpf', { ebpf: { cgroupRoot: cgroup, bpfRoot: pinDir } });
  t.is((await runChecked(execaRunner, 'cgroup', 'bpftool', ['cgroup', 'show', cgroup])).trim(), '', 'no program on the cgroup');
  const after = JSON.parse(await runChecked(runner, 'net', 'bpftool', ['-j', 'net', 'show'])) as Array<{ tc: unknown[] }>;
  t.deepEqual(after[0]!.tc, [], 'no tc program on any interface');
  t.notRegex(await runChecked(runner, 'tables', 'nft', ['list', 'tables']), /ferry/);
  t.regex(await runChecked(runner, 'foreign', 'nft', ['list', 'table', 'inet', 'other']), /tcp dport 22 accept/, 'others\' rules stay');
  t.deepEqual(await readdir(pinDir).catch(() => []), [], 'no pins');
});

test('kernel: ebpf a sync started ahead (startSync) is the one the next apply takes up, and one that no sync took up leaves no programs pinned', async (t) => {
  const { runner, pinDir, example, placement } = await exampleNode(t);
  // The programs' loads the backend asks bpftool for, counted per runner.
  const counted = () => {
    let loads = 0;
    const counting: Runner = {
      run: (command, args, input) => {
        if (command === 'bpftool' && (args.includes('loadall') || (args.includes('batch') && input?.includes('loadall')))) loads += 1;
        return runner.run(command, args, input);
      },
    };
    return { runner: counting, get loads() { return loads; } };
  };
  const first = counted();
  const counting = first.runner;
  const programDirs = async () => (await readdir(pinDir)).filter((name) => /progs/.test(name)).sort();

  const started = startSync(counting, 'ebpf', placement);
  const applied1 = await applyIfChanged(counting, example.ebpf!.rules, 'ebpf', { backend: placement });
  t.true(applied1.changed);
  t.is(first.loads, 1, 'the programs were loaded once, by the preparation the apply took up');
  const applied = await programDirs();
  t.is(applied.length, 2, `the socket and the packet programs' pins: ${applied.join(' ')}`);
  await started.discard();
  t.deepEqual(await programDirs(), applied, 'a discard after the sync took it up changes nothing');
  t.is(await diffRules(runner, render(example.ebpf!.rules, 'ebpf', placement)), '', 'the kernel holds the rules');

  // Started, then given up before any sync (a process stopping first): its loads go, the applied ones stay.
  const abandoned = startSync(counting, 'ebpf', placement);
  await abandoned.discard();
  t.is(first.loads, 2, 'the abandoned preparation had loaded the programs');
  t.deepEqual(await programDirs(), applied, 'only the applied programs stay pinned');
  t.is(await diffRules(runner, render(example.ebpf!.rules, 'ebpf', placement)), '', 'and the kernel still holds the rules');

  // A preparation through another runner (another namespace's) is not taken up: it is undone, and the sync prepares its own.
  startSync(counting, 'ebpf', placement);
  const other = counted();
  const again = await applyIfChanged(other.runner, example.ebpf!.rules, 'ebpf', { backend: placement });
  t.false(again.changed, 'the maps and attachments held the rules already');
  t.is(first.loads, 3, 'the first runner\'s preparation had loaded the programs');
  t.is(other.loads, 1, 'the sync loaded them again through its own runner');
  t.is((await programDirs()).length, 2, `only the applied programs stay pinned: ${(await programDirs()).join(' ')}`);
  t.is(await diffRules(runner, render(example.ebpf!.rules, 'ebpf', placement)), '', 'the kernel holds the rules');
  await cleanupRules(runner, 'ebpf', placement);
});

test('kernel: ebpf rules that need more map entries than the maps hold are refused before anything is written', async (t) => {
  const { runner, example, placement } = await exampleNode(t);
  const { rendered } = await applyIfChanged(runner, example.ebpf!.rules, 'ebpf', { backend: placement });
  // One group of more endpoints than the slots map holds.
  const rules = structuredClone(example.ebpf!.rules);
  const port = rules.families[0]!.servicePorts.find((candidate) => candidate.cluster?.endpoints.length)!;
  port.cluster!.endpoints = Array.from({ length: 2_100_000 }, (_, index) => ({ ip: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`, port: 80, weight: 1, onNode: false }));
  const error = await t.throwsAsync(applyIfChanged(runner, rules, 'ebpf', { backend: placement }));
  t.regex(error!.message, /more entries than the maps hold \(nothing was written\): slots \d+ > 2097152/);
  t.is(await diffRules(runner, rendered), '', 'the kernel still holds the previous maps');
});

test('kernel: ebpf a restart over maps a replace wrote takes the kernel\'s group ids from them: a change after it lands on those groups', async (t) => {
  const { runner, example, placement } = await exampleNode(t);
  await applyIfChanged(runner, example.ebpf!.rules, 'ebpf', { backend: placement });
  // Every port elsewhere: most of the node differs, so this sync replaces, under group ids beside the
  // first ones (not the ids a plan from scratch gives).
  const moved = structuredClone(example.ebpf!.rules);
  for (const family of moved.families) {
    for (const port of family.servicePorts) {
      port.port += 1000;
      if (port.nodePort) port.nodePort += 1;
    }
  }
  await applyIfChanged(runner, moved, 'ebpf', { backend: placement });
  // A restart: the maps hold the rules (the summary says so), nothing is written, the ids are adopted.
  const again = await applyIfChanged(runner, moved, 'ebpf', { backend: placement });
  t.deepEqual([again.changed, again.added, again.removed], [false, 0, 0]);
  const reweighted = structuredClone(moved);
  reweighted.families[0]!.servicePorts.find((candidate) => candidate.cluster?.endpoints.length)!.cluster!.endpoints[0]!.weight += 2;
  t.is(await applyChanges(runner, again.rendered, render(reweighted, 'ebpf', placement)), 'partial');
  // Under an id of its own, the change would leave the kernel's group behind, and diff would show it.
  t.is(await diffRules(runner, render(reweighted, 'ebpf', placement)), '', 'the change landed on the adopted groups');
});

test('kernel: ebpf a companion table the kernel refuses stops the sync before any map write: on a first apply nothing of ferry is left, over applied rules they stay', async (t) => {
  const { runner, cgroup, pinDir, example, placement } = await exampleNode(t);
  const good = render(example.ebpf!.rules, 'ebpf', placement);
  const frontends = async () => {
    const writer = await MapWriter.start();
    try {
      return (await writer.dump(await writer.open(MAPS.frontends, join(pinDir, 'maps', 'frontends')))).length;
    } finally {
      await writer.close();
    }
  };

  // A first apply: the kernel holds no companion table, so it is loaded first, and refused.
  await t.throwsAsync(reassertRules(runner, refusingCompanion(good)), { message: /companion table/ });
  t.is((await runChecked(execaRunner, 'cgroup', 'bpftool', ['cgroup', 'show', cgroup])).trim(), '', 'no program attached');
  t.notRegex(await runChecked(runner, 'tables', 'nft', ['list', 'tables']), /ferry/, 'no companion table');
  t.is(await frontends(), 0, 'no frontend written');

  // Over applied rules: checked in a throwaway namespace, refused, and the applied rules stay.
  await reassertRules(runner, good);
  const held = await frontends();
  t.true(held > 0);
  const changed = render({ ...example.ebpf!.rules, families: example.ebpf!.rules.families.map((family) => ({ ...family, servicePorts: family.servicePorts.slice(1) })) }, 'ebpf', placement);
  await t.throwsAsync(reassertRules(runner, refusingCompanion(changed)), { message: /companion table/ });
  t.is(await frontends(), held, 'the maps hold what the last apply wrote');
  t.is(await diffRules(runner, good), '', 'the kernel holds the applied rules');
  await cleanupRules(runner, 'ebpf', placement);
});

test('kernel: ebpf a pinned map that no longer fits the programs (another layout): the sync loads over new maps and the kernel holds the rules', async (t) => {
  const { runner, pinDir, example, placement } = await exampleNode(t);
  const rendered = render(example.ebpf!.rules, 'ebpf', placement);
  await reassertRules(runner, rendered);
  // The groups pin now holds a map of other value size, as a ferry of another layout would have left it.
  const groups = join(pinDir, 'maps', 'groups');
  await runChecked(runner, 'unpin', 'rm', [groups]);
  await runChecked(runner, 'other map', 'bpftool', ['map', 'create', groups, 'type', 'hash', 'key', '4', 'value', '4', 'entries', '16', 'name', 'groups']);
  await reassertRules(runner, rendered);
  t.is(await diffRules(runner, rendered), '', 'the kernel holds the rules, on new maps');
  const shown = JSON.parse(await runChecked(runner, 'groups', 'bpftool', ['-j', 'map', 'show', 'pinned', groups])) as { bytes_value: number };
  t.is(shown.bytes_value, 8, 'the groups pin is ferry\'s layout again');
  await cleanupRules(runner, 'ebpf', placement);
});

test('kernel: ebpf on a node with no interface but loopback, a later ferry process (a bpffs of its own, as under ip netns exec) finds the packet maps through the socket programs they are bound to', async (t) => {
  const { name } = await throwawayNamespace(t);
  const { cgroup } = await bpfWorkspace(t);
  // Each process mounts a bpffs of its own here (ip netns exec gives it a mount namespace of its own).
  const bpfRoot = join(tmpdir(), `ferryk-${randomBytes(4).toString('hex')}`, 'bpf');
  t.teardown(() => rm(dirname(bpfRoot), { recursive: true, force: true }));
  const args = ['--node', 'node-a', '-f', 'examples/cluster.yaml', '--backend', 'ebpf', '--cgroup-root', cgroup, '--bpf-root', bpfRoot];
  const first = await ferry(['apply', ...args], { netns: name });
  t.is(first.exitCode, 0, first.stderr);
  t.regex(first.stdout, /[1-9]\d* map entries written/);
  // Every pin went with that process's bpffs: only the cgroup's programs hold what it wrote.
  const diff = await ferry(['diff', ...args], { netns: name });
  t.is(diff.exitCode, 0, `diff finds the packet maps as written:\n${diff.stdout}${diff.stderr}`);
  const again = await ferry(['apply', ...args], { netns: name });
  t.regex(again.stdout, /already up to date/, again.stdout + again.stderr);

  const programs = JSON.parse(await runChecked(execaRunner, 'cgroup', 'bpftool', ['-j', 'cgroup', 'show', cgroup])) as Array<{ id: number; name: string }>;
  const mapIds = await Promise.all(programs.filter((program) => program.name === 'ferry_connect4').map(async (program) =>
    (JSON.parse(await runChecked(execaRunner, 'prog', 'bpftool', ['-j', 'prog', 'show', 'id', String(program.id)])) as { map_ids: number[] }).map_ids));
  const names = await Promise.all(mapIds.flat().map(async (id) => [id, (JSON.parse(await runChecked(execaRunner, 'map', 'bpftool', ['-j', 'map', 'show', 'id', String(id)])) as { name: string }).name] as const));
  const packetMaps = names.filter(([, map]) => map === 'packet_frontend');
  t.is(packetMaps.length, 1, `connect4 holds the packet frontends: ${JSON.stringify(names)}`);

  const cleanup = await ferry(['cleanup', '--backend', 'ebpf', '--cgroup-root', cgroup, '--bpf-root', bpfRoot], { netns: name });
  t.is(cleanup.exitCode, 0, cleanup.stderr);
  t.is((await runChecked(execaRunner, 'cgroup', 'bpftool', ['cgroup', 'show', cgroup])).trim(), '', 'no program on the cgroup');
  // The kernel frees a map once nothing holds it; freeing is deferred, so wait for it (bounded by the test's timeout).
  for (const [id] of packetMaps) {
    while ((await execaRunner.run('bpftool', ['map', 'show', 'id', String(id)])).exitCode === 0) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.pass('the bound packet maps went with the programs');
});
