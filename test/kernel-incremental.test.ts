import test from 'ava';
import fc from 'fast-check';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { compareRules, diffRules, reassertRules } from '../dataplane/dataplane.js';
import { applyIptables, planRestore } from '../dataplane/iptables/shell.js';
import { incrementalScript, portPart } from '../dataplane/nftables/incremental.js';
import { nftOf } from '../dataplane/nftables/render.js';
import { checkNftables } from '../dataplane/nftables/structure.js';
import { templates } from '../dataplane/templates.js';
import { applyNftables, reassertNftables } from '../dataplane/nftables/shell.js';
import { render } from '../dataplane/render.js';
import type { BackendName } from '../dataplane/backend-names.js';
import { runChecked } from '../dataplane/runner.js';
import { throwawayNamespace } from './helpers/netns-runner.js';
import { renderScenario, scenarios } from './helpers/golden.js';
import { clusterState, serviceObject, sliceObject, testConfig } from './helpers/objects.js';

/** A cluster drawn from a small universe, so that consecutive draws share, change and drop services. */
const clusterArbitrary = fc.array(fc.record({
  index: fc.integer({ min: 0, max: 7 }),
  endpoints: fc.subarray(['node-a', 'node-b', 'node-c'] as const),
  ready: fc.boolean(),
  type: fc.constantFrom('ClusterIP', 'NodePort', 'LoadBalancer'),
  affinity: fc.boolean(),
  local: fc.boolean(),
  dualStack: fc.boolean(),
}), { maxLength: 6 }).map((services) => {
  const seen = new Set<number>();
  return services.filter((service) => !seen.has(service.index) && seen.add(service.index));
});

type GeneratedServices = typeof clusterArbitrary extends fc.Arbitrary<infer T> ? T : never;

function rendered(services: GeneratedServices, backend: BackendName) {
  const objects = services.flatMap((s) => [
    serviceObject({
      name: `svc-${s.index}`, clusterIPs: s.dualStack ? [`10.96.2.${s.index + 1}`, `fd00:96::2:${s.index + 1}`] : [`10.96.2.${s.index + 1}`], type: s.type,
      ports: [{ name: 'http', port: 80, ...(s.type === 'ClusterIP' ? {} : { nodePort: 30100 + s.index }) }],
      ...(s.affinity ? { sessionAffinity: 'ClientIP' } : {}), ...(s.local && s.type !== 'ClusterIP' ? { externalTrafficPolicy: 'Local' } : {}),
      ...(s.type === 'LoadBalancer' ? { loadBalancerSourceRanges: ['192.168.56.0/24'] } : {}),
    }, s.type === 'LoadBalancer' ? { loadBalancer: { ingress: [{ ip: `198.51.100.${s.index + 1}` }] } } : undefined),
    sliceObject(`svc-${s.index}`, s.endpoints.map((node, k) => ({ ip: `10.244.${k + 1}.${s.index + 10}`, node, ready: s.ready || k > 0 }))),
  ]);
  return render(computeNodeRules(clusterState(...objects), 'node-a', testConfig), backend);
}

test('kernel: nftables incremental updates leave the kernel exactly as a full replacement would', async (t) => {
  const { runner } = await throwawayNamespace(t);
  let previous = rendered([], 'nftables');
  await applyNftables(runner, previous.texts[0]!.text);
  let incremental = 0;
  await fc.assert(fc.asyncProperty(clusterArbitrary, async (services) => {
    const next = rendered(services, 'nftables');
    const script = incrementalScript(nftOf(previous), nftOf(next));
    if (script === undefined) {
      await applyNftables(runner, next.texts[0]!.text);
    } else {
      incremental += 1;
      if (script) await runChecked(runner, 'incremental update', 'nft', ['-f', '-'], script);
    }
    const { current, desired } = await compareRules(runner, next);
    t.is(current, desired);
    // Digest by digest too: a table updated in place reads as one loaded fresh (ferry diff's way).
    t.is(await diffRules(runner, next), '');
    previous = next;
  }), { numRuns: 25 });
  t.true(incremental >= 20, `only ${incremental} of 25 updates were incremental`);
});

test('kernel: iptables updates rewrite only changed chains and leave the kernel as a full replacement would', async (t) => {
  const { runner } = await throwawayNamespace(t);
  let previous = rendered([], 'iptables');
  for (const part of previous.texts) await applyIptables(runner, part.family as 'IPv4' | 'IPv6', part.text);
  await fc.assert(fc.asyncProperty(clusterArbitrary, async (services) => {
    const next = rendered(services, 'iptables');
    for (const [index, part] of next.texts.entries()) {
      await applyIptables(runner, part.family as 'IPv4' | 'IPv6', part.text, previous.texts[index]!.text);
    }
    const { current, desired } = await compareRules(runner, next);
    t.is(current, desired);
    previous = next;
  }), { numRuns: 25 });
});

test('kernel: an iptables full sync over rules the kernel already holds restores nothing (every chain reads back as rendered, weights included)', async (t) => {
  const { runner } = await throwawayNamespace(t);
  // Every golden scenario, with weights of every kind (equal, 1:3, thirds), so that probabilities are rendered.
  for (const scenario of Object.keys(scenarios)) {
    const { rendered: next } = await renderScenario(scenario, 'iptables');
    for (const part of next.texts) await applyIptables(runner, part.family as 'IPv4' | 'IPv6', part.text);
    for (const part of next.texts) {
      const saved = await runChecked(runner, 'save', part.family === 'IPv4' ? 'iptables-save' : 'ip6tables-save', []);
      t.is(planRestore(saved, part.text), '', `${scenario} ${part.family}`);
    }
    t.true(next.texts.some((part) => part.text.includes('--probability')), scenario);
  }
});

// The check, the re-assert and the rules metric read the objects the templates print from: here the
// printed text is read (by patterns, as only a test does) and held to them, in every scenario.
test('the objects of a rendering name every chain, reference and rule its printed text has', async (t) => {
  const all = (text: string, pattern: RegExp) => [...text.matchAll(pattern)].map((match) => match[1]!).sort();
  // What is referred to, each name once (a rule may name a chain another rule of the chain names too).
  const named = (names: Iterable<string>) => [...new Set(names)].sort();
  const rulesIn = (text: string) => text.split('\n').filter((line) => /^\t\t\S/.test(line) && !/^\t\ttype \S+ hook /.test(line)).length;
  for (const scenario of Object.keys(scenarios)) {
    const { rendered } = await renderScenario(scenario, 'nftables');
    t.notThrows(() => checkNftables(rendered), scenario);
    for (const table of nftOf(rendered).tables) {
      const head = table.head.slice(0, table.head.indexOf('\n\tset '));
      t.deepEqual(all(head, /^\tchain (\S+) \{$/gm), table.headChains.map((chain) => chain.name).sort(), scenario);
      t.deepEqual(named(all(head, /\b(?:jump|goto) (\S+)/g)), named(table.headReferences.chains), scenario);
      t.deepEqual(named(all(head, /@([^\s,;}]+)/g)), named(table.headReferences.sets), scenario);
      t.is(rulesIn(head), table.headRules, scenario);
      for (const part of table.ports) {
        const verdicts = [...part.verdicts.values()].flat().map((element) => templates.nftVerdictElement(element)).join('\n');
        t.deepEqual(all(part.chains, /^\tchain (\S+) \{$/gm), [...part.chainNames].sort(), scenario);
        t.deepEqual(named(all(`${part.chains}\n${verdicts}`, /\b(?:jump|goto) (\S+)/g)), named(part.references.chains), `${scenario} ${part.chainNames[0]}`);
        t.deepEqual(named(all(part.chains, /@([^\s,;}]+)/g)), named(part.references.sets), `${scenario} ${part.chainNames[0]}`);
        t.is(rulesIn(part.chains), part.rules, `${scenario} ${part.chainNames[0]}`);
      }
    }
  }
});

test('an unchanged rule set needs no nftables commands, and one endpoint more touches only its service', (t) => {
  const before = render(computeNodeRules(clusterState(serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }]), serviceObject({ name: 'other', clusterIPs: ['10.96.0.21'] }), sliceObject('other', [{ ip: '10.244.1.8' }])), 'node-a', testConfig), 'nftables');
  t.is(incrementalScript(nftOf(before), nftOf(before)), '');
  const rendered = render(computeNodeRules(clusterState(serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }, { ip: '10.244.2.9' }]), serviceObject({ name: 'other', clusterIPs: ['10.96.0.21'] }), sliceObject('other', [{ ip: '10.244.1.8' }])), 'node-a', testConfig), 'nftables');
  const script = incrementalScript(nftOf(before), nftOf(rendered))!;
  // The web chain is rewritten with its new rules and the new endpoint joins the hairpin set; nothing else.
  const part = portPart(nftOf(rendered).tables[0]!, 'default/web:http/tcp')!;
  t.deepEqual(part.chainNames.length, 1);
  t.is(script, [
    `flush chain ip ferry ${part.chainNames[0]}`,
    `table ip ferry {\n${part.chains}}`,
    'add element ip ferry hairpin-endpoints { 10.244.2.9 . 10.244.2.9 }',
    '',
  ].join('\n'));
  t.regex(part.chains, /numgen random mod 2 < 1 dnat to 10\.244\.1\.9:8080\n.*dnat to 10\.244\.2\.9:8080/);
  t.notRegex(script, /other/);
  t.notRegex(script, /delete table|add table/);
});

test('kernel: a full resync re-asserts the rules without reading them back: tampering undone, affinity state kept', async (t) => {
  const { runner } = await throwawayNamespace(t);
  const affine: GeneratedServices[number] = { index: 1, endpoints: ['node-a', 'node-b'], ready: true, type: 'ClusterIP', affinity: true, local: false, dualStack: false };
  await applyNftables(runner, rendered([affine], 'nftables').texts[0]!.text);
  const affinitySet = /set (affinity-\w+) \{/.exec(rendered([affine], 'nftables').texts[0]!.text)![1]!;
  await fc.assert(fc.asyncProperty(clusterArbitrary, async (services) => {
    const next = rendered([affine, ...services.filter((s) => s.index !== affine.index)], 'nftables');
    // Someone else: a client in the affinity state, a stray chain, set and map element, a lost rule.
    await runChecked(runner, 'tamper', 'nft', ['-f', '-'], [
      `add element ip ferry ${affinitySet} { 192.0.2.7 }`,
      'add chain ip ferry stray-chain',
      'add set ip ferry stray-set { type ipv4_addr; }',
      'add element ip ferry service-ips { 192.0.2.1 . tcp . 1 : drop }',
      'flush chain ip ferry masquerading',
      '',
    ].join('\n'));
    await reassertNftables(runner, next);
    const { current, desired } = await compareRules(runner, next);
    t.is(current, desired);
    t.regex(await runChecked(runner, 'list', 'nft', ['list', 'set', 'ip', 'ferry', affinitySet]), /192\.0\.2\.7/);
  }), { numRuns: 15 });
});

test('kernel: a full resync the kernel refuses (a set of another type, left by an older ferry) replaces the tables instead', async (t) => {
  const { runner } = await throwawayNamespace(t);
  await runChecked(runner, 'an older layout', 'nft', ['-f', '-'], 'table ip ferry {\n\tset cluster-ips {\n\t\ttype inet_service\n\t}\n\tchain sep-OLD {\n\t}\n}\n');
  const next = rendered([{ index: 2, endpoints: ['node-a'], ready: true, type: 'NodePort', affinity: false, local: false, dualStack: true }], 'nftables');
  await reassertRules(runner, next);
  const { current, desired } = await compareRules(runner, next);
  t.is(current, desired);
});
