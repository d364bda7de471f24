import test from 'ava';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { applyIfChanged, applyRules, cleanupRules, compareRules, diffRules } from '../dataplane/dataplane.js';
import * as iptables from '../dataplane/iptables/shell.js';
import * as nftables from '../dataplane/nftables/shell.js';
import { render, type RenderedRules } from '../dataplane/render.js';
import { nftOf, scriptText } from '../dataplane/nftables/render.js';
import { BACKEND_NAMES, type BackendName } from '../dataplane/backend-names.js';
import { DataplaneError, runChecked } from '../dataplane/runner.js';
import { renderScenario } from './helpers/golden.js';
import { recording, throwawayNamespace } from './helpers/netns-runner.js';
import { clusterState, serviceObject, sliceObject, testConfig } from './helpers/objects.js';

const config = testConfig;

/** Rules for a cluster with `count` services, each with two endpoints. */
function rulesWith(count: number, backend: BackendName) {
  const objects = Array.from({ length: count }, (_, i) => [
    serviceObject({ name: `svc-${i}`, clusterIPs: [`10.96.1.${i + 1}`], type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30000 + i }] }),
    sliceObject(`svc-${i}`, [{ ip: `10.244.1.${i + 10}`, node: 'node-a' }, { ip: `10.244.2.${i + 10}`, node: 'node-b' }]),
  ]).flat();
  return render(computeNodeRules(clusterState(...objects), 'node-a', config), backend);
}

/** One dual-stack Service with an endpoint in each family. */
function dualStackRules(backend: BackendName) {
  const service = serviceObject({ name: 'dual', clusterIPs: ['10.96.2.1', 'fd00:96::2:1'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack' });
  return render(computeNodeRules(clusterState(service, sliceObject('dual', [{ ip: '10.244.1.50', node: 'node-a' }]), sliceObject('dual', [{ ip: 'fd00:244:1::50', node: 'node-a' }])), 'node-a', config), backend);
}

// Somebody else's rules that must survive everything ferry does.
const FOREIGN_NFT = 'table inet other {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n';
const FOREIGN_IPT = '*nat\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -d 10.0.0.1/32 -j RETURN\nCOMMIT\n*filter\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n';

// The rule-text backends; the eBPF backend's apply, diff, repair and cleanup are kernel-ebpf-backend.test.ts.
for (const backend of BACKEND_NAMES.filter((name) => name !== 'ebpf')) {
  test(`kernel: ${backend} apply makes diff empty, a re-apply changes nothing, and cleanup leaves only others' rules`, async (t) => {
    const { runner } = await throwawayNamespace(t);
    if (backend === 'nftables') await runChecked(runner, 'foreign rules', 'nft', ['-f', '-'], FOREIGN_NFT);
    else await runChecked(runner, 'foreign rules', 'iptables-restore', ['--noflush'], FOREIGN_IPT);
    const foreignBefore = backend === 'nftables' ? await runChecked(runner, 'list', 'nft', ['list', 'table', 'inet', 'other']) : await runChecked(runner, 'save', 'iptables-save', []);

    const { rendered } = await renderScenario('default', backend);
    t.not(await diffRules(runner, rendered), '', 'before apply the kernel differs');
    await applyRules(runner, rendered);
    t.is(await diffRules(runner, rendered), '', 'after apply the kernel holds exactly the desired rules');
    const once = await compareRules(runner, rendered);
    await applyRules(runner, rendered);
    t.deepEqual(await compareRules(runner, rendered), once, 'applying twice is the same as once (no duplicate jumps)');

    await cleanupRules(runner, backend);
    if (backend === 'nftables') {
      const tables = await runChecked(runner, 'list', 'nft', ['list', 'tables']);
      t.notRegex(tables, /ferry/);
      t.is(await runChecked(runner, 'list', 'nft', ['list', 'table', 'inet', 'other']), foreignBefore);
    } else {
      const saved = await runChecked(runner, 'save', 'iptables-save', []) + await runChecked(runner, 'save', 'ip6tables-save', []);
      t.notRegex(saved, /FERRY/);
      // Empty built-in tables may remain; every rule and chain of the other software must.
      const rulesOf = (text: string) => text.split('\n').filter((line) => line.startsWith('-A') || /^:KUBE/.test(line));
      t.deepEqual(rulesOf(await runChecked(runner, 'save', 'iptables-save', [])), rulesOf(foreignBefore).filter((line) => !/FERRY/.test(line)));
      t.is(rulesOf(foreignBefore).length, 4);
    }
    await cleanupRules(runner, backend);
    t.pass('a second cleanup is harmless');
  });

  test(`kernel: ${backend} removes the chains of Services that went away`, async (t) => {
    const { runner } = await throwawayNamespace(t);
    await applyRules(runner, rulesWith(5, backend));
    const small = rulesWith(2, backend);
    t.not(await diffRules(runner, small), '');
    await applyRules(runner, small);
    t.is(await diffRules(runner, small), '');
    const listing = backend === 'nftables' ? await nftables.readNftables(runner) : await iptables.readIptables(runner, 'IPv4');
    t.notRegex(listing, /10\.244\.1\.14/, 'the endpoint of a removed Service is gone');
  });

  test(`kernel: a ${backend} rule set the kernel rejects is never applied and the previous rules stay`, async (t) => {
    const { runner } = await throwawayNamespace(t);
    const good = rulesWith(3, backend);
    await applyRules(runner, good);
    const before = await compareRules(runner, good);
    // A rule the kernel refuses (port out of range), in an otherwise valid rule set.
    const error = backend === 'nftables'
      ? await t.throwsAsync(nftables.applyNftables(runner, rulesWith(1, backend).texts[0]!.text.replace('jump services', 'jump services\n\t\ttcp dport 99999 drop')))
      : await t.throwsAsync(iptables.applyIptables(runner, 'IPv4', rulesWith(1, backend).texts[0]!.text.replace('-A FERRY-MARK-MASQ ', '-A FERRY-SERVICES -p tcp -m tcp --dport 99999 -j DROP\n-A FERRY-MARK-MASQ ')));
    t.true(error instanceof DataplaneError);
    t.deepEqual(await compareRules(runner, good), before, 'the kernel still holds the previous rules');
  });

  test(`kernel: a ${backend} rule set that parses but the kernel refuses is never applied, in either family`, async (t) => {
    const { runner } = await throwawayNamespace(t);
    const good = rulesWith(3, backend);
    await applyRules(runner, good);
    const before = await compareRules(runner, good);
    // Masquerading is only allowed in postrouting: the tools accept the text (nft -c and
    // iptables-restore --test both do), only the kernel's commit refuses it.
    // iptables: in the IPv6 rules, restored after the IPv4 ones, which must not be left updated.
    const bad = () => (backend === 'nftables' ? rulesWith(1, backend) : dualStackRules(backend));
    const poisoned: RenderedRules = backend === 'nftables'
      ? poisonFirstPort(bad(), (chains) => chains.replace('{\n', '{\n\t\tmasquerade\n'))
      : poisonFirstIPv6Port(bad(), (chain) => `-A ${chain} -j MASQUERADE\n`);
    t.not(poisoned.texts.map((part) => part.text).join(), bad().texts.map((part) => part.text).join(), 'the rule was inserted');
    const error = await t.throwsAsync(applyRules(runner, poisoned));
    t.true(error instanceof DataplaneError);
    t.deepEqual(await compareRules(runner, good), before, 'the kernel still holds the previous rules of both families');
  });
}

/** iptables rules whose first IPv6 port gets one more rule in its first nat chain (before anything printed the text). */
function poisonFirstIPv6Port(rendered: RenderedRules, rule: (chain: string) => string): RenderedRules {
  const own = rendered.iptables!.families.find((family) => family.rules.family === 'IPv6')!.ports[0]!.own.nat;
  own.rules += rule(own.chains[0]!);
  return rendered;
}

/** nftables rules whose first port's chains are rewritten (what a full apply prints them from). */
function poisonFirstPort(rendered: RenderedRules, rewrite: (chains: string) => string): RenderedRules {
  const nft = nftOf(rendered);
  const [table, ...others] = nft.tables;
  const [port, ...ports] = table!.ports;
  const poisoned = { ...nft, tables: [{ ...table!, ports: [{ ...port!, chains: rewrite(port!.chains) }, ...ports] }, ...others] };
  return { ...rendered, nft: poisoned, texts: [{ family: 'both', text: [...scriptText(poisoned)].join('') }] };
}

test('kernel: iptables apply (the agent\'s first sync) plans from one iptables-save: a throwaway load only when something changes, nothing run when the kernel holds the rules, --force and a tampered rule write again', async (t) => {
  const { runner: inNamespace } = await throwawayNamespace(t);
  const { runner, commands } = recording(inNamespace);
  const rules = computeNodeRules(clusterState(serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }, { ip: '10.244.2.9' }])), 'node-a', config);
  const loads = () => commands.filter((command) => command.startsWith('unshare ')).length;
  const restores = () => commands.filter((command) => /tables-restore/.test(command) && !command.startsWith('unshare ') && !command.includes('--test')).length;

  const first = await applyIfChanged(runner, rules, 'iptables');
  t.true(first.changed);
  t.true(first.added > 0);
  t.is(loads(), 2, 'each family loaded into a throwaway namespace once, as the kernel\'s check');
  t.is(await diffRules(inNamespace, first.rendered), '');

  commands.length = 0;
  const { changed, added, removed } = await applyIfChanged(runner, rules, 'iptables');
  t.deepEqual({ changed, added, removed }, { changed: false, added: 0, removed: 0 }, 'the kernel holds them');
  t.deepEqual([loads(), restores()], [0, 0], 'iptables-save only');

  commands.length = 0;
  t.true((await applyIfChanged(runner, rules, 'iptables', { force: true })).changed);
  t.is(restores(), 2, '--force restores both families');

  const chain = /^:(FERRY-SVC-\S+)/m.exec(first.rendered.texts[0]!.text)![1]!;
  await runChecked(inNamespace, 'tamper', 'iptables', ['-t', 'nat', '-F', chain]);
  const repaired = await applyIfChanged(inNamespace, rules, 'iptables');
  t.true(repaired.changed);
  t.true(repaired.added > 0, 'the flushed chain\'s rules counted as added');
  t.is(await diffRules(inNamespace, first.rendered), '');
});

test('kernel: iptables writes many new chains ahead in transactions of their own: the kernel ends with what one transaction of the text gives; a refused last nat transaction leaves the previous nat rules as they were, and the next apply tidies up', async (t) => {
  const { runner: inNamespace } = await throwawayNamespace(t);
  const { runner, commands, inputs } = recording(inNamespace);
  const many = rulesWith(120, 'iptables');
  const ipv4 = many.texts.find((part) => part.family === 'IPv4')!.text;
  t.true((ipv4.match(/^:FERRY-/gm) ?? []).length > 400, 'more new chains than one transaction takes');
  await applyRules(runner, many);
  const restored = inputs.filter((_, index) => /^iptables-restore .*--noflush$/.test(commands[index]!) && !commands[index]!.includes('--test'));
  t.true((restored[0]!.match(/^\*nat$/gm) ?? []).length > 2, 'the nat chains went in several transactions');
  const { runner: direct } = await throwawayNamespace(t);
  await runChecked(direct, 'one transaction', 'iptables-restore', ['--noflush'], ipv4);
  t.is(await iptables.readIptables(inNamespace, 'IPv4'), await iptables.readIptables(direct, 'IPv4'));

  // The throwaway load would refuse this before anything is written; restoring the plan here stands for a
  // kernel that refuses only the real transaction (masquerading outside postrouting: the tools accept it).
  // Each table is a transaction of its own (filter's went through): what holds is nat's.
  const { runner: small } = await throwawayNamespace(t);
  const good = rulesWith(3, 'iptables');
  await applyRules(small, good);
  const nat = (text: string) => text.slice(text.indexOf('*nat\n'), text.indexOf('COMMIT', text.indexOf('*nat\n')));
  const before = nat(await iptables.readIptables(small, 'IPv4'));
  const refused = ipv4.replace('-A FERRY-SERVICES ', '-A FERRY-SERVICES -j MASQUERADE\n-A FERRY-SERVICES ');
  await t.throwsAsync(iptables.restorePlan(small, 'IPv4', iptables.planRestore(await iptables.saveIptables(small, 'IPv4'), refused)));
  const after = nat(await iptables.readIptables(small, 'IPv4'));
  const chainsOf = (text: string) => new Set(text.split('\n').filter((line) => line.startsWith(':')).map((line) => line.slice(1).split(' ')[0]!));
  const extra = [...chainsOf(after)].filter((chain) => !chainsOf(before).has(chain));
  t.true(extra.length > 200, 'the chains written ahead stay');
  const kept = (text: string) => text.split('\n').filter((line) => !extra.some((chain) => line.startsWith(`:${chain} `) || line.startsWith(`-A ${chain} `)));
  t.deepEqual(kept(after), kept(before), 'every nat chain that was there holds its rules, and nothing jumps to the new ones');
  await applyRules(small, good);
  t.is(await diffRules(small, good), '', 'the next apply removes them');
});
