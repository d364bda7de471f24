import test from 'ava';
import fc from 'fast-check';
import { computeNodeRules, ComputeError, type ComputeConfig } from '../controlplane/compute/compute.js';
import { endpointKey } from '../rules/names.js';
import type { ServicePortRules } from '../rules/node-rules.js';
import { integerWeights } from '../controlplane/compute/weights.js';
import type { ClusterState } from '../controlplane/model/types.js';
import { render, renderedText } from '../dataplane/render.js';
import { buildClusterState } from '../controlplane/model/cluster-state.js';
import { ClusterIndex } from '../controlplane/model/cluster-index.js';
import { clusterState, nodeObject, serviceObject, sliceObject, testConfig } from './helpers/objects.js';
import { BACKEND_NAMES } from '../dataplane/backend-names.js';

const config = testConfig;

/** GIVEN a state, WHEN node-a's rules are computed, THEN the one IPv4 service port. */
function onlyPort(state: ClusterState, overrides: Partial<ComputeConfig> = {}, weights?: Map<string, number>): ServicePortRules {
  const rules = computeNodeRules(state, 'node-a', { ...config, ...overrides }, weights);
  const ports = rules.families.find((family) => family.family === 'IPv4')!.servicePorts;
  if (ports.length !== 1) throw new Error(`expected one service port, got ${ports.length}`);
  return ports[0]!;
}

const ips = (port: ServicePortRules, group: 'cluster' | 'local') => port[group]?.endpoints.map((endpoint) => endpoint.ip);

test('a ClusterIP Service spreads over its ready endpoints, in address order, with equal weights', (t) => {
  const port = onlyPort(clusterState(serviceObject(), sliceObject('web', [
    { ip: '10.244.2.10', node: 'node-b' }, { ip: '10.244.1.9', node: 'node-a' }, { ip: '10.244.3.10', node: 'node-c', ready: false },
  ])));
  t.is(port.id, 'default/web:http/tcp');
  t.is(port.internal, 'cluster');
  t.deepEqual(ips(port, 'cluster'), ['10.244.1.9', '10.244.2.10']);
  t.deepEqual(port.cluster!.endpoints.map((endpoint) => [endpoint.port, endpoint.weight]), [[8080, 1], [8080, 1]]);
  t.is(port.local, undefined);
  t.is(port.external, undefined);
});

test('when no endpoint is ready, serving terminating endpoints are used (kube-proxy fallback)', (t) => {
  const port = onlyPort(clusterState(serviceObject(), sliceObject('web', [
    { ip: '10.244.1.9', node: 'node-a', ready: false, serving: true, terminating: true },
    { ip: '10.244.2.9', node: 'node-b', ready: false, serving: false, terminating: true },
    { ip: '10.244.3.9', node: 'node-c', ready: false, serving: true, terminating: false },
  ])));
  t.is(port.internal, 'cluster');
  t.deepEqual(ips(port, 'cluster'), ['10.244.1.9']);
});

test('a ready endpoint wins over terminating ones', (t) => {
  const port = onlyPort(clusterState(serviceObject(), sliceObject('web', [
    { ip: '10.244.1.9', ready: false, serving: true, terminating: true }, { ip: '10.244.2.9' },
  ])));
  t.deepEqual(ips(port, 'cluster'), ['10.244.2.9']);
});

test('a Service without usable endpoints is rejected on every address', (t) => {
  const port = onlyPort(clusterState(
    serviceObject({ type: 'NodePort', externalIPs: ['203.0.113.5'], ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
    sliceObject('web', [{ ip: '10.244.1.9', ready: false }]),
  ));
  t.is(port.internal, 'reject');
  t.deepEqual(port.external, { policy: 'Cluster', hasLocalEndpoints: false, verdict: 'reject' });
  t.is(port.cluster, undefined);
});

test('internalTrafficPolicy Local uses only this node\'s endpoints, and drops when it has none', (t) => {
  const local = onlyPort(clusterState(serviceObject({ internalTrafficPolicy: 'Local' }), sliceObject('web', [
    { ip: '10.244.1.9', node: 'node-a' }, { ip: '10.244.2.9', node: 'node-b' },
  ])));
  t.is(local.internal, 'local');
  t.deepEqual(ips(local, 'local'), ['10.244.1.9']);
  t.is(local.cluster, undefined, 'nothing uses the cluster-wide group');
  t.is(local.local!.clusterIPMasquerade, 'off-cluster');

  const none = onlyPort(clusterState(serviceObject({ internalTrafficPolicy: 'Local' }), sliceObject('web', [{ ip: '10.244.2.9', node: 'node-b' }])));
  t.is(none.internal, 'drop');
  t.is(none.local, undefined);
});

test('externalTrafficPolicy Local sends outside traffic to local endpoints and keeps every endpoint for pods', (t) => {
  const port = onlyPort(clusterState(
    serviceObject({ type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
    sliceObject('web', [{ ip: '10.244.1.9', node: 'node-a' }, { ip: '10.244.2.9', node: 'node-b' }]),
  ));
  t.is(port.internal, 'cluster');
  t.deepEqual(port.external, { policy: 'Local', hasLocalEndpoints: true, verdict: undefined });
  t.deepEqual(ips(port, 'cluster'), ['10.244.1.9', '10.244.2.9']);
  t.deepEqual(ips(port, 'local'), ['10.244.1.9']);
  t.is(port.cluster!.clusterIPMasquerade, 'off-cluster');
  t.is(port.local!.clusterIPMasquerade, 'none');
});

test('externalTrafficPolicy Local without a local endpoint drops outside traffic but serves pods', (t) => {
  const port = onlyPort(clusterState(
    serviceObject({ type: 'LoadBalancer', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }, { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] } }),
    sliceObject('web', [{ ip: '10.244.2.9', node: 'node-b' }]),
  ));
  t.deepEqual(port.external, { policy: 'Local', hasLocalEndpoints: false, verdict: 'drop' });
  t.deepEqual(ips(port, 'cluster'), ['10.244.2.9']);
  t.deepEqual(port.externalIPs, ['198.51.100.7']);
});

test('externalTrafficPolicy is ignored for ClusterIP Services (the API only honours it for external types)', (t) => {
  const port = onlyPort(clusterState(serviceObject({ externalIPs: ['203.0.113.5'], externalTrafficPolicy: 'Local' }), sliceObject('web', [{ ip: '10.244.2.9', node: 'node-b' }])));
  t.deepEqual(port.external, { policy: 'Cluster', hasLocalEndpoints: false, verdict: undefined });
});

test('the endpoint port comes from the EndpointSlice port of the same name and protocol', (t) => {
  const state = clusterState(
    serviceObject({ ports: [{ name: 'http', port: 80, targetPort: 'web' }, { name: 'dns', port: 53, protocol: 'UDP' }] }),
    sliceObject('web', [{ ip: '10.244.1.9' }], { ports: [{ name: 'http', port: 8081, protocol: 'TCP' }, { name: 'dns', port: 5353, protocol: 'TCP' }] }),
  );
  const [dns, http] = computeNodeRules(state, 'node-a', config).families[0]!.servicePorts;
  t.is(http!.cluster!.endpoints[0]!.port, 8081);
  t.is(dns!.internal, 'reject', 'a TCP slice port does not serve a UDP service port');
});

test('the same endpoint in two slices counts once', (t) => {
  const port = onlyPort(clusterState(serviceObject(),
    sliceObject('web', [{ ip: '10.244.1.9' }], { name: 'web-a' }),
    sliceObject('web', [{ ip: '10.244.1.9' }, { ip: '10.244.2.9' }], { name: 'web-b' })));
  t.deepEqual(ips(port, 'cluster'), ['10.244.1.9', '10.244.2.9']);
});

test('slices of another namespace or Service do not count', (t) => {
  const port = onlyPort(clusterState(serviceObject(),
    sliceObject('web', [{ ip: '10.244.1.9' }], { namespace: 'other' }),
    sliceObject('api', [{ ip: '10.244.2.9' }])));
  t.is(port.internal, 'reject');
});

test('a dual-stack Service gets one set of rules per family with that family\'s endpoints', (t) => {
  const state = clusterState(serviceObject({ clusterIPs: ['10.96.0.20', 'fd00:96::14'] }),
    sliceObject('web', [{ ip: '10.244.1.9' }]), sliceObject('web', [{ ip: 'fd00:244:0:1::9' }]));
  const [v4, v6] = computeNodeRules(state, 'node-a', config).families;
  t.is(v4!.servicePorts[0]!.clusterIP, '10.96.0.20');
  t.deepEqual(ips(v4!.servicePorts[0]!, 'cluster'), ['10.244.1.9']);
  t.is(v6!.servicePorts[0]!.clusterIP, 'fd00:96::14');
  t.deepEqual(ips(v6!.servicePorts[0]!, 'cluster'), ['fd00:244:0:1::9']);
  t.is(v6!.localCIDR, 'fd00:244::/56');
});

test('off-cluster traffic detection follows detectLocalMode, and masqueradeAll masquerades everything', (t) => {
  const state = clusterState(serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }]));
  const family = (overrides: Partial<ComputeConfig>) => computeNodeRules(state, 'node-a', { ...config, ...overrides }).families[0]!;
  t.is(family({}).localCIDR, '10.244.0.0/16');
  t.is(family({ detectLocalMode: 'NodeCIDR' }).localCIDR, '10.244.1.0/24');
  t.is(family({ clusterCIDRs: [] }).localCIDR, undefined);
  t.is(family({ clusterCIDRs: [] }).servicePorts[0]!.cluster!.clusterIPMasquerade, 'none');
  t.is(family({ masqueradeAll: true }).servicePorts[0]!.cluster!.clusterIPMasquerade, 'all');
});

test('node ports listen on the primary address, on CIDRs, or on every local address', (t) => {
  const state = clusterState();
  const addresses = (nodePortAddresses: ComputeConfig['nodePortAddresses']) =>
    computeNodeRules(state, 'node-b', { ...config, nodePortAddresses }).families.map((family) => family.nodePortAddresses);
  t.deepEqual(addresses({ kind: 'primary' }), [{ kind: 'addresses', addresses: ['192.168.56.12'] }, { kind: 'addresses', addresses: ['fd00:56::12'] }]);
  t.deepEqual(addresses({ kind: 'cidrs', cidrs: ['192.168.56.0/24'] }), [{ kind: 'cidrs', cidrs: ['192.168.56.0/24'] }, { kind: 'cidrs', cidrs: [] }]);
  t.deepEqual(addresses({ kind: 'all' }), [{ kind: 'all' }, { kind: 'all' }]);
});

test('the firewall covers load-balancer IPs only, with the source ranges of the family', (t) => {
  const port = onlyPort(clusterState(
    serviceObject({ type: 'LoadBalancer', externalIPs: ['203.0.113.5'], loadBalancerSourceRanges: ['192.168.56.0/24', 'fd00::/64'], ports: [{ name: 'http', port: 80, nodePort: 30080 }] },
      { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] } }),
    sliceObject('web', [{ ip: '10.244.1.9' }]),
  ));
  t.deepEqual(port.externalIPs, ['203.0.113.5', '198.51.100.7']);
  // The ranges let the node (192.168.56.11) in: the load-balancer IP itself is an allowed source too, as kube-proxy has it.
  t.deepEqual(port.firewall, { loadBalancerIPs: ['198.51.100.7'], sourceRanges: ['192.168.56.0/24', '198.51.100.7/32'] });
});

test('source ranges that leave the node out do not admit the load-balancer IP; ranges of which none is of the family admit nobody; no ranges, no firewall', (t) => {
  const firewallOf = (ranges: string[] | undefined) => onlyPort(clusterState(
    serviceObject({ type: 'LoadBalancer', ...(ranges ? { loadBalancerSourceRanges: ranges } : {}), ports: [{ name: 'http', port: 80, nodePort: 30080 }] },
      { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] } }),
    sliceObject('web', [{ ip: '10.244.1.9' }]),
  )).firewall;
  t.deepEqual(firewallOf(['203.0.113.0/24']), { loadBalancerIPs: ['198.51.100.7'], sourceRanges: ['203.0.113.0/24'] });
  t.deepEqual(firewallOf(['fd00::/64']), { loadBalancerIPs: ['198.51.100.7'], sourceRanges: [] }, 'fails closed, where kube-proxy opens it to everyone');
  t.deepEqual(firewallOf(['not-a-range']), { loadBalancerIPs: ['198.51.100.7'], sourceRanges: [] }, 'unreadable ranges fail closed too');
  t.is(firewallOf(undefined), undefined);
});

test('session affinity carries its timeout', (t) => {
  const port = onlyPort(clusterState(serviceObject({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }), sliceObject('web', [{ ip: '10.244.1.9' }])));
  t.is(port.affinitySeconds, 60);
});

test('cluster IPs and service CIDRs are collected per family', (t) => {
  const state = clusterState(serviceObject({ clusterIPs: ['10.96.0.20', 'fd00:96::14'] }), serviceObject({ name: 'b', clusterIPs: ['10.96.0.9'] }),
    { apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.96.0.0/16', 'fd00:96::/112'] } });
  const [v4, v6] = computeNodeRules(state, 'node-a', config).families;
  t.deepEqual(v4!.clusterIPs, ['10.96.0.9', '10.96.0.20']);
  t.deepEqual(v4!.serviceCIDRs, ['10.96.0.0/16']);
  t.deepEqual(v6!.clusterIPs, ['fd00:96::14']);
});

test('weights are applied per endpoint and reduced to small integers', (t) => {
  const state = clusterState(serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }, { ip: '10.244.2.9' }]));
  const weights = new Map([[endpointKey('tcp', '10.244.1.9', 8080), 2], [endpointKey('tcp', '10.244.2.9', 8080), 6]]);
  t.deepEqual(onlyPort(state, {}, weights).cluster!.endpoints.map((endpoint) => endpoint.weight), [1, 3]);
});

test('integer weights keep proportions, never starve an endpoint, and refuse nonsense', (t) => {
  t.deepEqual(integerWeights([1, 1, 1]), [1, 1, 1]);
  t.deepEqual(integerWeights([5, 5]), [1, 1]);
  t.deepEqual(integerWeights([0.25, 0.75]), [1, 3]);
  t.deepEqual(integerWeights([0.001, 99.999]), [1, 999]);
  t.throws(() => integerWeights([1, 0]), { instanceOf: RangeError });
  t.throws(() => integerWeights([Number.NaN]), { instanceOf: RangeError });
  fc.assert(fc.property(fc.array(fc.double({ min: 0.01, max: 1000, noNaN: true }), { minLength: 1, maxLength: 20 }), (weights) => {
    const integers = integerWeights(weights);
    const total = integers.reduce((a, b) => a + b, 0);
    const exact = weights.reduce((a, b) => a + b, 0);
    return integers.every((w, i) => Number.isInteger(w) && w >= 1 && Math.abs(w / total - weights[i]! / exact) <= 0.02 + 1 / total);
  }));
});

test('compute is deterministic: object order does not change the result', (t) => {
  const objects = [serviceObject(), serviceObject({ name: 'b', clusterIPs: ['10.96.0.9'] }),
    sliceObject('web', [{ ip: '10.244.2.9' }, { ip: '10.244.1.9' }]), sliceObject('b', [{ ip: '10.244.3.9' }])];
  const forward = computeNodeRules(clusterState(...objects), 'node-a', config);
  const backward = computeNodeRules(clusterState(...[...objects].reverse()), 'node-a', config);
  t.deepEqual(forward, backward);
});

test('an unknown node is an error for the whole computation', (t) => {
  t.throws(() => computeNodeRules(clusterState(), 'node-x', config), { instanceOf: ComputeError, message: /node-x/ });
});

test('a Local-policy Service with a health-check node port reports its local endpoints, a dual-stack pod once', (t) => {
  const state = clusterState(
    serviceObject({ type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000, clusterIPs: ['10.96.0.20', 'fd00:96::14'], ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
    sliceObject('web', [{ ip: '10.244.1.9', node: 'node-a' }, { ip: '10.244.1.10', node: 'node-a', ready: false }, { ip: '10.244.2.9', node: 'node-b' }]),
    sliceObject('web', [{ ip: 'fd00:244:0:1::9', node: 'node-a' }]),
    serviceObject({ name: 'cluster-policy', clusterIPs: ['10.96.0.21'], type: 'NodePort', healthCheckNodePort: 32001, ports: [{ name: 'http', port: 80, nodePort: 30081 }] }),
  );
  t.deepEqual(computeNodeRules(state, 'node-a', config).healthChecks, [{ namespace: 'default', name: 'web', port: 32000, localEndpoints: 1 }]);
  t.deepEqual(computeNodeRules(state, 'node-c', config).healthChecks, [{ namespace: 'default', name: 'web', port: 32000, localEndpoints: 0 }]);
});

test('a node whose local endpoints all terminate reports none to the health check (they still serve their connections)', (t) => {
  const state = clusterState(
    serviceObject({ type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000, ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
    sliceObject('web', [{ ip: '10.244.1.9', node: 'node-a', ready: false, serving: true, terminating: true }, { ip: '10.244.2.9', node: 'node-b' }]),
  );
  const rules = computeNodeRules(state, 'node-a', config);
  t.deepEqual(rules.healthChecks, [{ namespace: 'default', name: 'web', port: 32000, localEndpoints: 0 }], 'kube-proxy: 503, load balancers drain the node');
  t.deepEqual(rules.families[0]!.servicePorts[0]!.local?.endpoints.map((endpoint) => endpoint.ip), ['10.244.1.9'], 'the terminating endpoint still serves what reaches it');
});

const nodes = [nodeObject('node-a'), nodeObject('node-b'), nodeObject('node-c')];
/** A state whose Node objects are the same from call to call, as an informer's are. */
const sharedState = (...objects: unknown[]) => buildClusterState([...nodes, ...objects]).state;

// The model, compute and render reuse what they made for objects they saw before (identity as the key).
// Whatever objects are shared between syncs, the result must be what a first computation gives.
test('reuse across syncs never shows an old result: sharing objects gives what fresh copies give', (t) => {
  const pool = [0, 1, 2, 3].flatMap((index) => [
    serviceObject({ name: `svc-${index}`, clusterIPs: [`10.96.3.${index + 1}`], ...(index === 3 ? { sessionAffinity: 'ClientIP' } : {}) }),
    serviceObject({ name: `svc-${index}`, clusterIPs: [`10.96.3.${index + 1}`], type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30200 + index }] }),
    sliceObject(`svc-${index}`, [{ ip: `10.244.1.${index + 10}`, node: 'node-a' }]),
    sliceObject(`svc-${index}`, [{ ip: `10.244.1.${index + 10}`, node: 'node-a' }, { ip: `10.244.2.${index + 10}`, node: 'node-b', ready: index % 2 === 0 }]),
  ]);
  const weights = [new Map<string, number>(), new Map([[endpointKey('tcp', '10.244.1.10', 8080), 3]])];
  fc.assert(fc.property(fc.array(fc.tuple(fc.subarray(pool), fc.constantFrom(0, 1)), { minLength: 2, maxLength: 6 }), (syncs) => {
    for (const [objects, weighting] of syncs) {
      // Two objects of one kind and name are one object changing: keep the last, as an informer would.
      const current = [...new Map(objects.map((object) => [`${object.kind}/${object.metadata.name}`, object])).values()];
      const shared = computeNodeRules(sharedState(...current), 'node-a', config, weights[weighting]);
      const fresh = computeNodeRules(clusterState(...structuredClone(current)), 'node-a', config, new Map(weights[weighting]));
      t.deepEqual(shared, fresh);
      for (const backend of BACKEND_NAMES) t.is(renderedText(render(shared, backend)), renderedText(render(fresh, backend)));
    }
  }), { numRuns: 100 });
});


test('a frontend two Services claim is kept by one: a cluster IP over an external IP, else the first by name; the other is warned', (t) => {
  const state = clusterState(
    serviceObject({ name: 'b', clusterIPs: ['10.96.0.21'], type: 'NodePort', externalIPs: ['203.0.113.5'], ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
    serviceObject({ name: 'a', clusterIPs: ['10.96.0.20'], type: 'NodePort', externalIPs: ['203.0.113.5', '10.96.0.22'], ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
    serviceObject({ name: 'c', clusterIPs: ['10.96.0.22'] }),
  );
  const ports = new Map(computeNodeRules(state, 'node-a', config).families[0]!.servicePorts.map((port) => [port.id, port]));
  t.like(ports.get('default/a:http/tcp'), { externalIPs: ['203.0.113.5'], nodePort: 30080 });
  t.like(ports.get('default/b:http/tcp'), { externalIPs: [], nodePort: 0, external: undefined });
  const index = ClusterIndex.of(state);
  t.deepEqual(index.conflicts(index.services.keys()).map((warning) => `${warning.object} ${warning.message}`).sort(), [
    'default/a spec.externalIPs: 10.96.0.22:80/TCP is Service default/c\'s too, which keeps it (ignored here)',
    'default/b spec.externalIPs: 203.0.113.5:80/TCP is Service default/a\'s too, which keeps it (ignored here)',
    'default/b spec.ports[0].nodePort: node port 30080/TCP is Service default/a\'s too, which keeps it (ignored here)',
  ]);
});

test('conflicts follow Services as they come, change and go', (t) => {
  const read = (object: unknown) => clusterState(object).services[0]!;
  const a = read(serviceObject({ name: 'a', clusterIPs: ['10.96.0.20'], externalIPs: ['203.0.113.5'] }));
  const b = read(serviceObject({ name: 'b', clusterIPs: ['10.96.0.21'], externalIPs: ['203.0.113.5'] }));
  const bAlone = read(serviceObject({ name: 'b', clusterIPs: ['10.96.0.21'], externalIPs: ['203.0.113.6'] }));
  const index = new ClusterIndex();
  const warned = () => index.conflicts(index.services.keys()).map((warning) => warning.object);
  index.putService(a);
  t.deepEqual(warned(), []);
  index.putService(b);
  t.deepEqual(warned(), ['default/b'], 'b shares a\'s external IP');
  index.putService(bAlone);
  t.deepEqual(warned(), [], 'b moved to another address');
  index.putService(b);
  index.removeService('default/a');
  t.deepEqual(warned(), [], 'a went');
  index.putService(a);
  t.deepEqual(warned(), ['default/b'], 'a came back');
});

test('two Services on one cluster IP and port (never from the API): the first by name has the port, the other none and a warning', (t) => {
  const state = clusterState(serviceObject({ name: 'b', clusterIPs: ['10.96.0.99'] }), serviceObject({ name: 'a', clusterIPs: ['10.96.0.99'] }), sliceObject('b', [{ ip: '10.244.1.9' }]));
  const family = computeNodeRules(state, 'node-a', config).families[0]!;
  t.deepEqual(family.servicePorts.map((port) => port.id), ['default/a:http/tcp']);
  t.deepEqual(family.clusterIPs, ['10.96.0.99']);
  const index = ClusterIndex.of(state);
  t.deepEqual(index.conflicts(index.services.keys()).map((warning) => `${warning.object} ${warning.message}`), ['default/b spec.clusterIPs: 10.96.0.99:80/TCP is Service default/a\'s too, which keeps it (ignored here)']);
});
