import test from 'ava';
import fc from 'fast-check';
import { computeNodeRules, updateNodeRules } from '../controlplane/compute/compute.js';
import { endpointKey } from '../rules/names.js';
import { buildClusterState } from '../controlplane/model/cluster-state.js';
import { ClusterStore } from '../controlplane/model/cluster-store.js';
import { staleUDPFlows } from '../controlplane/compute/stale-flows.js';
import { BACKEND_NAMES } from '../dataplane/backend-names.js';
import { listNodePlan } from '../dataplane/ebpf/listing.js';
import { planNode, type NodePlan } from '../dataplane/ebpf/node-plan.js';
import { planPortChanges } from '../dataplane/ebpf/port-plan.js';
import { render, renderedText, type RenderedRules } from '../dataplane/render.js';
import { changePool, poolNodes, poolView } from './helpers/change-pool.js';
import { nodeObject, serviceObject, sliceObject, testConfig } from './helpers/objects.js';

const nodes = poolNodes;
const weightings = [new Map<string, number>(), new Map([[endpointKey('tcp', '10.244.1.10', 8080), 3]])];

test('a sync from the store after changes gives the rules, text and stale flows of a sync from scratch, for every backend', (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.subarray(changePool), fc.constantFrom(0, 1)), { minLength: 2, maxLength: 6 }), (views) => {
    const store = new ClusterStore('node-a');
    let previous: { rules: ReturnType<typeof computeNodeRules>; rendered: Map<string, RenderedRules> } | undefined;
    let weighting = 0;
    for (const [objects, nextWeighting] of views) {
      const view = poolView(objects);
      store.replaceAll(view);
      // The agent touches the Services whose endpoints' weights changed; here that is every Service with 10.244.1.10.
      if (nextWeighting !== weighting) store.touch(['default/svc-0']);
      weighting = nextWeighting;
      const { index, services } = store.take();
      const fresh = computeNodeRules(buildClusterState(structuredClone(view)).state, 'node-a', testConfig, weightings[weighting]);
      const { rules, changed } = updateNodeRules(previous?.rules, index, 'node-a', testConfig, weightings[weighting]!, services);
      t.deepEqual(rules, fresh);
      if (previous) t.deepEqual(staleUDPFlows(previous.rules, rules, changed), staleUDPFlows(previous.rules, fresh));
      const rendered = new Map(BACKEND_NAMES.map((backend) => {
        const update = previous && changed !== 'all' ? { previous: previous.rendered.get(backend)!, changed } : undefined;
        const incremental = render(rules, backend, undefined, update);
        t.is(renderedText(incremental), renderedText(render(fresh, backend)), backend);
        return [backend, incremental] as const;
      }));
      previous = { rules, rendered };
    }
  }), { numRuns: 150 });
});

test('after one change only that Service is computed again: the other ports are the objects they were', (t) => {
  const objects = [...nodes, serviceObject({ name: 'a' }), sliceObject('a', [{ ip: '10.244.1.9' }]), serviceObject({ name: 'b', clusterIPs: ['10.96.0.21'] }), sliceObject('b', [{ ip: '10.244.1.8' }])];
  const store = new ClusterStore('node-a');
  store.replaceAll(objects);
  const first = store.take();
  t.is(first.services, 'all');
  const before = updateNodeRules(undefined, first.index, 'node-a', testConfig, new Map(), first.services).rules;
  store.apply({ type: 'put', object: sliceObject('b', [{ ip: '10.244.1.8' }, { ip: '10.244.2.8' }]) });
  const second = store.take();
  t.deepEqual([...(second.services as Set<string>)], ['default/b']);
  const { rules, changed } = updateNodeRules(before, second.index, 'node-a', testConfig, new Map(), second.services);
  t.deepEqual([...(changed as Set<string>)], ['IPv4 default/b:http/tcp']);
  const [was, is] = [before.families[0]!.servicePorts, rules.families[0]!.servicePorts];
  t.is(is[0], was[0]);
  t.not(is[1], was[1]);
  t.is(is[1]!.cluster!.endpoints.length, 2);
  // Nothing changed: nothing to compute, and the next take names no Service.
  t.deepEqual([...(store.take().services as Set<string>)], []);
});

test('the store: a delete takes an object out, a change to this node changes everything, another node nothing', (t) => {
  const store = new ClusterStore('node-a');
  store.replaceAll([...nodes, serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }])]);
  store.take();
  store.apply({ type: 'delete', object: sliceObject('web', []) });
  const afterDelete = store.take();
  t.deepEqual([...(afterDelete.services as Set<string>)], ['default/web']);
  t.deepEqual(afterDelete.index.slicesOf('IPv4', 'default/web'), []);
  store.apply({ type: 'put', object: nodeObject('node-b', 'zone-b') });
  t.deepEqual([...(store.take().services as Set<string>)], []);
  store.apply({ type: 'put', object: nodeObject('node-a', 'zone-a') });
  t.is(store.take().services, 'all');
  // An invalid object is reported once, when it arrives, and a fix takes its place.
  store.apply({ type: 'put', object: serviceObject({ name: 'bad', ports: [{ name: 'http', port: 0 }] }) });
  const bad = store.take();
  t.is(bad.errors.length, 1);
  t.false(bad.index.services.has('default/bad'));
  t.is(store.take().errors.length, 0);
});

test('the eBPF plan after port changes lists as the plan of the new rules made from scratch', (t) => {
  fc.assert(fc.property(fc.array(fc.subarray(changePool), { minLength: 2, maxLength: 6 }), (views) => {
    const store = new ClusterStore('node-a');
    const addresses = ['192.168.56.11', 'fd00:56::11'];
    let previous: ReturnType<typeof computeNodeRules> | undefined;
    let plan: NodePlan | undefined;
    let nextId = 1000;
    for (const objects of views) {
      store.replaceAll(poolView(objects));
      const { index, services } = store.take();
      const { rules, changed } = updateNodeRules(previous, index, 'node-a', testConfig, new Map(), services);
      if (!plan || !previous || changed === 'all') plan = planNode(rules, addresses);
      else planPortChanges(plan, previous, rules, changed, addresses, () => nextId++);
      const listing = (of: NodePlan) => listNodePlan(of, { node: 'node-a', attachments: 'none', addressesKnown: true });
      t.is(listing(plan), listing(planNode(rules, addresses)));
      previous = rules;
    }
  }), { numRuns: 100 });
});
