import test from 'ava';
import fc from 'fast-check';
import { updateNodeRules } from '../controlplane/compute/compute.js';
import { ClusterStore } from '../controlplane/model/cluster-store.js';
import { applyChanges, applyIfChanged, cleanupRules, diffRules } from '../dataplane/dataplane.js';
import { render, type BackendOptions, type RenderedRules } from '../dataplane/render.js';
import { BACKEND_NAMES } from '../dataplane/backend-names.js';
import { runChecked } from '../dataplane/runner.js';
import type { NodeRules } from '../rules/node-rules.js';
import { bpfWorkspace } from './helpers/bpf-workspace.js';
import { changePool, poolView } from './helpers/change-pool.js';
import { recording, throwawayNamespace } from './helpers/netns-runner.js';
import { nodeObject, serviceObject, sliceObject, testConfig } from './helpers/objects.js';

// The agent's partial sync as it runs: the store takes a new view, compute and render handle only the
// Services that changed, and the backend writes only their entries. After every step the kernel must
// hold exactly what a sync from scratch would have written (diff reads the kernel back).
for (const backend of BACKEND_NAMES) {
  test(`kernel: ${backend} partial syncs of tracked changes leave the kernel as a full sync would`, async (t) => {
    const { runner } = await throwawayNamespace(t);
    let options: BackendOptions | undefined;
    if (backend === 'ebpf') {
      const { cgroup, pinDir } = await bpfWorkspace(t);
      options = { ebpf: { cgroupRoot: cgroup, bpfRoot: pinDir } };
      await runChecked(runner, 'veths', 'ip', ['link', 'add', 'fe0', 'type', 'veth', 'peer', 'name', 'fe1']);
      for (const device of ['fe0', 'fe1']) await runChecked(runner, 'up', 'ip', ['link', 'set', device, 'up']);
      await runChecked(runner, 'address', 'ip', ['address', 'add', '192.168.56.11/24', 'dev', 'fe0']);
      t.teardown(() => cleanupRules(runner, 'ebpf', options));
    }
    const store = new ClusterStore('node-a');
    let previous: { rules: NodeRules; rendered: RenderedRules } | undefined;
    const kinds: string[] = [];
    for (const objects of fc.sample(fc.subarray(changePool), { numRuns: 12, seed: 7 })) {
      store.replaceAll(poolView(objects));
      const { index, services } = store.take();
      const { rules, changed } = updateNodeRules(previous?.rules, index, 'node-a', testConfig, new Map(), services);
      const rendered = previous
        ? render(rules, backend, options, changed !== 'all' ? { previous: previous.rendered, changed } : undefined)
        : (await applyIfChanged(runner, rules, backend, { backend: options })).rendered;
      if (previous) kinds.push(await applyChanges(runner, previous.rendered, rendered));
      t.is(await diffRules(runner, rendered), '', `after ${kinds.length} partial syncs`);
      previous = { rules, rendered };
    }
    t.true(kinds.filter((kind) => kind === 'partial').length >= 5, kinds.join(' '));
  });
}

test('kernel: iptables a partial sync that adds more chains than one transaction takes writes them ahead, and leaves the kernel as a full sync would', async (t) => {
  const { runner: inNamespace } = await throwawayNamespace(t);
  const { runner, commands, inputs } = recording(inNamespace);
  const services = (count: number) => Array.from({ length: count }, (_, i) => [
    serviceObject({ name: `svc-${i}`, clusterIPs: [`10.96.1.${i + 1}`] }),
    sliceObject(`svc-${i}`, [{ ip: `10.244.1.${i + 10}`, node: 'node-a' }, { ip: `10.244.2.${i + 10}`, node: 'node-b' }]),
  ]).flat();
  const store = new ClusterStore('node-a');
  const node = nodeObject('node-a');
  store.replaceAll([node, ...services(3)]);
  const first = store.take();
  const before = updateNodeRules(undefined, first.index, 'node-a', testConfig, new Map(), first.services);
  const { rendered: previous } = await applyIfChanged(runner, before.rules, 'iptables');
  store.replaceAll([node, ...services(120)]);
  const next = store.take();
  const { rules, changed } = updateNodeRules(before.rules, next.index, 'node-a', testConfig, new Map(), next.services);
  t.not(changed, 'all');
  const rendered = render(rules, 'iptables', undefined, changed !== 'all' ? { previous, changed } : undefined);
  commands.length = 0;
  inputs.length = 0;
  t.is(await applyChanges(runner, previous, rendered), 'partial');
  const restored = inputs.filter((_, index) => /^iptables-restore .*--noflush$/.test(commands[index]!));
  t.is(restored.length, 1, 'IPv4 only: IPv6 has nothing to change');
  t.true((restored[0]!.match(/^\*nat$/gm) ?? []).length > 2, 'the new chains went ahead in transactions of their own');
  const declared = restored[0]!.match(/^:\S+/gm) ?? [];
  t.is(new Set(declared).size, declared.length, 'each chain written once');
  t.is(await diffRules(inNamespace, rendered), '');
});
