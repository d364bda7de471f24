import test from 'ava';
import fc from 'fast-check';
import { computeNodeRules, endpointKey, updateNodeRules } from '../controlplane/compute/compute.js';
import { buildClusterState } from '../controlplane/model/cluster-state.js';
import { ClusterStore } from '../controlplane/model/cluster-store.js';
import { staleUDPFlows } from '../controlplane/compute/stale-flows.js';
import { BACKEND_NAMES } from '../dataplane/backend-names.js';
import { render, renderedText, type RenderedRules } from '../dataplane/render.js';
import { nodeObject, serviceObject, sliceObject, testConfig } from './helpers/objects.js';

const nodes = [nodeObject('node-a'), nodeObject('node-b')];

// A small universe of objects: consecutive views share, change, move and drop Services and slices.
const pool = [0, 1, 2, 3].flatMap((index) => [
  serviceObject({ name: `svc-${index}`, clusterIPs: [`10.96.0.${20 + index}`], ports: [{ name: 'http', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' }] }),
  serviceObject({ name: `svc-${index}`, clusterIPs: [`10.96.0.${20 + index}`, `fd00:96::${20 + index}`], type: 'NodePort', externalTrafficPolicy: 'Local', sessionAffinity: 'ClientIP', ports: [{ name: 'http', port: 80, nodePort: 30080 + index }] }),
  // A cluster IP another Service holds too (hand-written manifests may): the set keeps it while either does.
  serviceObject({ name: `svc-${index}`, clusterIPs: ['10.96.0.99'] }),
  sliceObject(`svc-${index}`, [{ ip: `10.244.1.${index + 10}`, node: 'node-a' }]),
  sliceObject(`svc-${index}`, [{ ip: `10.244.1.${index + 10}`, node: 'node-a' }, { ip: `10.244.2.${index + 10}`, node: 'node-b', ready: index % 2 === 0 }]),
  sliceObject(`svc-${index}`, [{ ip: `fd00:244:0:1::${index + 10}`, node: 'node-a' }]),
  // The same slice name labelled for another Service: a slice moving between Services.
  sliceObject(`svc-${(index + 1) % 4}`, [{ ip: `10.244.3.${index + 10}`, node: 'node-b' }], { name: `svc-${index}-abcde` }),
]);
const weightings = [new Map<string, number>(), new Map([[endpointKey('tcp', '10.244.1.10', 8080), 3]])];

const keyOf = (object: { kind: string; metadata: { name: string; namespace?: string } }) => `${object.kind}/${object.metadata.namespace}/${object.metadata.name}`;

test('a sync from the store after changes gives the rules, text and stale flows of a sync from scratch, for every backend', (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.subarray(pool), fc.constantFrom(0, 1)), { minLength: 2, maxLength: 6 }), (views) => {
    const store = new ClusterStore('node-a');
    let previous: { rules: ReturnType<typeof computeNodeRules>; rendered: Map<string, RenderedRules> } | undefined;
    let weighting = 0;
    for (const [objects, nextWeighting] of views) {
      // Two objects of one kind and name are one object changing: keep the last, as an informer would.
      const view = [...nodes, ...new Map(objects.map((object) => [keyOf(object), object])).values()];
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
