import test from 'ava';
import { updateNodeRules } from '../controlplane/compute/compute.js';
import { ClusterStore } from '../controlplane/model/cluster-store.js';
import { ruleCounts } from '../dataplane/dataplane.js';
import { partialRestore } from '../dataplane/iptables/incremental.js';
import { BUILTIN_CHAINS } from '../dataplane/iptables/head.js';
import { familyText, headRules, iptablesOf } from '../dataplane/iptables/render.js';
import { checkIptables } from '../dataplane/iptables/structure.js';
import { render, type RenderedRules } from '../dataplane/render.js';
import type { NodeRules } from '../rules/node-rules.js';
import { renderScenario, scenarios } from './helpers/golden.js';
import { nodeObject, serviceObject, sliceObject, testConfig } from './helpers/objects.js';

// The agent's partial iptables sync without a kernel: a tracked change renders only its ports, the
// rendering reads as one made from scratch, and the restore names only what the change touches
// (test/kernel-change-tracking.test.ts restores such changes into a kernel and compares).
const web = (endpoints: string[]) => [serviceObject(), sliceObject('web', endpoints.map((ip) => ({ ip })))];
const other = [serviceObject({ name: 'other', clusterIPs: ['10.96.0.21'] }), sliceObject('other', [{ ip: '10.244.1.8' }])];

function tracker() {
  const store = new ClusterStore('node-a');
  // The same Node object every time: a new one would be a change of this node, which recomputes everything.
  const node = nodeObject('node-a');
  let previous: { rules: NodeRules; rendered: RenderedRules } | undefined;
  return (objects: unknown[]) => {
    store.replaceAll([node, ...objects]);
    const { index, services } = store.take();
    const { rules, changed } = updateNodeRules(previous?.rules, index, 'node-a', testConfig, new Map(), services);
    const rendered = render(rules, 'iptables', undefined, previous && changed !== 'all' ? { previous: previous.rendered, changed } : undefined);
    const step = { rules, rendered, before: previous?.rendered };
    previous = { rules, rendered };
    return step;
  };
}

const plan = (step: { rendered: RenderedRules; before?: RenderedRules }) => partialRestore(iptablesOf(step.before!), iptablesOf(step.rendered), 'IPv4');

test('a tracked change renders as a sync from scratch would, and its restore rewrites only the changed Service\'s chains', (t) => {
  const sync = tracker();
  const first = sync([...web(['10.244.1.9']), ...other]);
  t.is(iptablesOf(first.rendered).update, undefined, 'the first view renders everything');
  const grown = sync([...web(['10.244.1.9', '10.244.2.9']), ...other]);
  t.truthy(iptablesOf(grown.rendered).update, 'rendered from the one before');
  const fresh = render(grown.rules, 'iptables');
  t.deepEqual(grown.rendered.texts.map((part) => part.text), fresh.texts.map((part) => part.text));
  t.deepEqual(ruleCounts(grown.rendered), fresh.texts.map((part) => ({ family: part.family, rules: part.text.split('\n').filter((line) => line.startsWith('-A ')).length })));
  t.notThrows(() => checkIptables(grown.rendered));

  const restore = plan(grown)!;
  const declared = [...restore.matchAll(/^:(\S+)/gm)].map((match) => match[1]!);
  const webPart = iptablesOf(grown.rendered).families[0]!.ports.find((part) => part.own.nat.rules.includes('10.244.2.9'))!;
  t.deepEqual(declared.sort(), [...webPart.own.nat.chains].sort(), 'the web chains, nothing shared');
  t.is(webPart.own.nat.chains.filter((chain) => chain.startsWith('FERRY-SEP-')).length, 2);
  t.regex(restore, /^\*nat\n/);
  t.notRegex(restore, /\*filter|\*mangle|-X |10\.244\.1\.8|FERRY-SERVICES/);
  t.is(restore.split('\n').filter((line) => line.startsWith('-A ')).join('\n'), webPart.own.nat.rules.trimEnd(), 'the rules of those chains, as rendered');

  const unchanged = sync([...web(['10.244.1.9', '10.244.2.9']), ...other]);
  t.is(plan(unchanged), '', 'nothing changed: nothing to restore');
});

test('a Service that goes rewrites the shared chains and the cluster IPs, and removes its chains after nothing jumps to them', (t) => {
  const sync = tracker();
  const first = sync([...web(['10.244.1.9']), ...other]);
  const gone = sync(web(['10.244.1.9']));
  const otherChains = iptablesOf(first.rendered).families[0]!.ports.find((part) => part.shared['FERRY-SERVICES'].includes('10.96.0.21'))!.own.nat.chains;
  const restore = plan(gone)!;
  t.deepEqual([...restore.matchAll(/^-X (\S+)/gm)].map((match) => match[1]).sort(), [...otherChains].sort());
  t.regex(restore, /^:FERRY-SERVICES - \[0:0\]$/m);
  t.regex(restore, /^:FERRY-CLUSTER-IPS - \[0:0\]$/m);
  t.notRegex(restore, /-A FERRY-CLUSTER-IPS -d 10\.96\.0\.21\//, 'its cluster IP is no longer rejected');
  // Removals come last in their table: after FERRY-SERVICES was written again without the jumps to them.
  const nat = restore.slice(restore.indexOf('*nat'));
  t.true(nat.indexOf('-A FERRY-SERVICES') < nat.indexOf('-X '));
  t.deepEqual(gone.rendered.texts.map((part) => part.text), render(gone.rules, 'iptables').texts.map((part) => part.text));
});

test('a rendering not made from the previous one is not planned port by port', (t) => {
  const sync = tracker();
  const first = sync(web(['10.244.1.9']));
  const unrelated = render(first.rules, 'iptables');
  t.is(partialRestore(iptablesOf(unrelated), iptablesOf(first.rendered), 'IPv4'), undefined);
});

test('the check of a tracked change looks at the changed ports: a jump to a chain nothing declares is refused', (t) => {
  const sync = tracker();
  sync([...web(['10.244.1.9']), ...other]);
  const grown = sync([...web(['10.244.1.9', '10.244.2.9']), ...other]);
  const part = iptablesOf(grown.rendered).families[0]!.ports.find((candidate) => candidate.own.nat.rules.includes('10.244.2.9'))!;
  part.references.nat.push('FERRY-SEP-MISSING');
  t.throws(() => checkIptables(grown.rendered), { message: /jumps to FERRY-SEP-MISSING, which is not declared/ });
});

// The check and the rules metric read the objects the templates print from: here the printed text is
// read (by patterns, as only a test does) and held to them, in every golden scenario.
test('the objects of an iptables rendering name every chain, jump and rule its printed text has', async (t) => {
  for (const scenario of Object.keys(scenarios)) {
    const { rendered } = await renderScenario(scenario, 'iptables');
    t.notThrows(() => checkIptables(rendered), scenario);
    for (const family of iptablesOf(rendered).families) {
      const text = familyText('node-a', family);
      const tables = new Map(text.split(/^\*/m).slice(1).map((block) => [block.slice(0, block.indexOf('\n')), block]));
      const rules = [...text.matchAll(/^-A (\S+) .*$/gm)];
      t.is(rules.length, family.portRules + headRules(family), `${scenario} ${family.rules.family}: rules`);
      for (const table of ['mangle', 'filter', 'nat'] as const) {
        const block = tables.get(table)!;
        const own = table === 'filter' ? [] : family.ports.flatMap((part) => part.own[table].chains);
        const declared = [...block.matchAll(/^:(\S+) - \[0:0\]$/gm)].map((match) => match[1]!);
        t.deepEqual(declared.sort(), [...family.head.declared[table], ...own].sort(), `${scenario} ${table}: declared`);
        // Every rule is in a chain declared or the kernel's; the objects name each jump to a chain of ferry's, as often as the text has it.
        const known = new Set([...declared, ...BUILTIN_CHAINS]);
        t.deepEqual([...block.matchAll(/^-A (\S+) /gm)].filter((match) => !known.has(match[1]!)), [], `${scenario} ${table}: rules in undeclared chains`);
        const jumps = [...block.matchAll(/ -j (FERRY-\S+)/g)].map((match) => match[1]!);
        const named = [
          ...family.head.hooks[table].map((hook) => hook.jump),
          ...(table === 'nat' ? family.head.nodePortMatches.map(() => family.head.nodePortsChain) : []),
          ...family.ports.flatMap((part) => part.references[table]),
        ];
        t.deepEqual(jumps.sort(), named.sort(), `${scenario} ${table}: jumps`);
      }
    }
  }
});
