import test from 'ava';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { endpointKey } from '../rules/names.js';
import { parseDestination, parseSource } from '../controlplane/cli/trace-command.js';
import { traceConnection, type TraceQuery } from '../controlplane/trace/trace.js';
import { clusterState, serviceObject, sliceObject, testConfig } from './helpers/objects.js';
import { plan } from './helpers/address-plan.js';

const nodeA = [plan.nodes['node-a'].ipv4, plan.nodes['node-a'].ipv6];
const serviceCIDR = { apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: [plan.serviceCIDR.ipv4] } };
const endpoints = [{ ip: '10.244.1.9', node: 'node-a' as const }, { ip: '10.244.2.9', node: 'node-b' as const }];

/** node-a's answer for one connection in a cluster of the given objects. */
function trace(objects: unknown[], query: Partial<TraceQuery> & { destination: string; port: number }, weights?: Map<string, number>) {
  const rules = computeNodeRules(clusterState(serviceCIDR, ...objects), 'node-a', testConfig, weights);
  return traceConnection(rules, nodeA, { source: '10.244.1.5', protocol: 'tcp', ...query });
}

test('a cluster IP from a pod: forwarded to every endpoint by weight, not masqueraded', (t) => {
  const answer = trace([serviceObject(), sliceObject('web', endpoints)], { destination: '10.96.0.20', port: 80 }, new Map([[endpointKey('tcp', '10.244.2.9', 8080), 3]]));
  t.like(answer, { verdict: 'forward', service: 'default/web:http', entry: 'clusterIP', masquerade: false });
  t.deepEqual(answer.endpoints.map(({ ip, probability }) => [ip, probability]), [['10.244.1.9', 0.25], ['10.244.2.9', 0.75]]);
});

test('a cluster IP from outside the cluster CIDR is masqueraded; a port it does not serve is rejected; an unallocated service address dropped', (t) => {
  const objects = [serviceObject(), sliceObject('web', endpoints)];
  t.like(trace(objects, { source: plan.externalClient.ipv4, destination: '10.96.0.20', port: 80 }), { verdict: 'forward', masquerade: true });
  t.like(trace(objects, { destination: '10.96.0.20', port: 81 }), { verdict: 'reject', service: null, entry: null, endpoints: [] });
  t.like(trace(objects, { destination: '10.96.0.77', port: 80 }), { verdict: 'drop', service: null });
  t.like(trace(objects, { destination: '192.0.2.1', port: 80 }), { verdict: 'notIntercepted', service: null });
  t.like(trace(objects, { protocol: 'udp', destination: '10.96.0.20', port: 80 }), { verdict: 'reject' });
});

test('a Service without endpoints rejects; internalTrafficPolicy Local without one here drops', (t) => {
  t.like(trace([serviceObject()], { destination: '10.96.0.20', port: 80 }), { verdict: 'reject', service: 'default/web:http', entry: 'clusterIP' });
  const local = [serviceObject({ internalTrafficPolicy: 'Local' }), sliceObject('web', [{ ip: '10.244.2.9', node: 'node-b' }])];
  t.like(trace(local, { destination: '10.96.0.20', port: 80 }), { verdict: 'drop', entry: 'clusterIP' });
});

test('a node port: Cluster policy masquerades to every endpoint; Local keeps the client on this node\'s endpoints, but pods and the node itself use every endpoint', (t) => {
  const cluster = [serviceObject({ type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }), sliceObject('web', endpoints)];
  const outside = { source: plan.externalClient.ipv4, destination: plan.nodes['node-a'].ipv4, port: 30080 };
  const answer = trace(cluster, outside);
  t.like(answer, { verdict: 'forward', entry: 'nodePort', masquerade: true });
  t.is(answer.endpoints.length, 2);
  const local = [serviceObject({ type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }), sliceObject('web', endpoints)];
  const kept = trace(local, outside);
  t.like(kept, { verdict: 'forward', masquerade: false });
  t.deepEqual(kept.endpoints.map((endpoint) => endpoint.ip), ['10.244.1.9']);
  t.like(trace(local, { ...outside, source: '10.244.2.5' }), { masquerade: false, endpoints: [{ ip: '10.244.1.9' }, { ip: '10.244.2.9' }] });
  t.like(trace(local, { ...outside, source: plan.nodes['node-a'].ipv4 }), { masquerade: true, endpoints: [{ ip: '10.244.1.9' }, { ip: '10.244.2.9' }] });
  const none = [serviceObject({ type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }), sliceObject('web', [{ ip: '10.244.2.9', node: 'node-b' }])];
  t.like(trace(none, outside), { verdict: 'drop', entry: 'nodePort' });
  // Node ports answer at the node's primary address only (nodePortAddresses primary).
  t.like(trace(cluster, { ...outside, destination: plan.nodes['node-b'].ipv4 }), { verdict: 'notIntercepted' });
});

test('externalTrafficPolicy Local without an endpoint here: outside clients are dropped, pods and the node still reach every endpoint', (t) => {
  const objects = [serviceObject({ type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }), sliceObject('web', [{ ip: '10.244.2.9', node: 'node-b' }])];
  const to = { destination: plan.nodes['node-a'].ipv4, port: 30080 };
  t.like(trace(objects, { ...to, source: plan.externalClient.ipv4 }), { verdict: 'drop', entry: 'nodePort', endpoints: [] });
  t.like(trace(objects, to), { verdict: 'forward', masquerade: false, endpoints: [{ ip: '10.244.2.9', port: 8080, probability: 1 }] });
  t.like(trace(objects, { ...to, source: plan.nodes['node-a'].ipv4 }), { verdict: 'forward', masquerade: true, endpoints: [{ ip: '10.244.2.9', port: 8080, probability: 1 }] });
});

test('external and load-balancer IPs: named by entry, the source ranges decide who gets in', (t) => {
  const objects = [
    serviceObject({ type: 'LoadBalancer', externalIPs: ['203.0.113.5'], loadBalancerSourceRanges: ['192.168.56.0/24'], ports: [{ name: 'http', port: 80, nodePort: 30080 }] }, { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] } }),
    sliceObject('web', endpoints),
  ];
  t.like(trace(objects, { source: plan.externalClient.ipv4, destination: '203.0.113.5', port: 80 }), { verdict: 'forward', entry: 'externalIP', masquerade: true });
  t.like(trace(objects, { source: plan.externalClient.ipv4, destination: '198.51.100.7', port: 80 }), { verdict: 'forward', entry: 'loadBalancerIP' });
  const blocked = trace(objects, { source: '192.0.2.50', destination: '198.51.100.7', port: 80 });
  t.like(blocked, { verdict: 'drop', entry: 'loadBalancerIP', endpoints: [] });
  t.regex(blocked.steps.join('\n'), /loadBalancerSourceRanges \(192\.168\.56\.0\/24.*\) do not hold the source/);
});

test('IPv6 destinations are [ADDR]:PORT; a bad --to or --from names the flag', (t) => {
  const objects = [serviceObject({ clusterIPs: ['fd00:96::20'], ipFamilies: ['IPv6'] }), sliceObject('web', [{ ip: 'fd00:244:0:1::9', node: 'node-a' }])];
  const to = parseDestination('[fd00:96::20]:80');
  t.deepEqual(to, { destination: 'fd00:96::20', port: 80 });
  t.like(trace(objects, { source: 'fd00:244:0:1::5', ...to }), { verdict: 'forward', entry: 'clusterIP', endpoints: [{ ip: 'fd00:244:0:1::9', port: 8080, probability: 1 }] });
  t.throws(() => parseDestination('fd00:96::20:80'), { message: /--to .* is not ADDR:PORT/ });
  t.throws(() => parseDestination('10.96.0.20:0'), { message: /--to/ });
  t.throws(() => parseSource('10.96.0'), { message: /--from "10\.96\.0" is not an IP address/ });
});
