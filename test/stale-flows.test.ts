import test from 'ava';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { staleUDPFlows } from '../controlplane/compute/stale-flows.js';
import { buildClusterState } from '../controlplane/model/cluster-state.js';
import type { NodeRules } from '../rules/node-rules.js';
import { nodeObject, serviceObject, sliceObject, testConfig, type EndpointSpec } from './helpers/objects.js';

// A UDP Service on 53 with a node port, its endpoints as given, computed for node-a.
function rules(endpoints: EndpointSpec[], spec: Record<string, unknown> = {}, protocol = 'UDP'): NodeRules {
  const { state, errors } = buildClusterState([
    nodeObject('node-a', 'zone-1'), nodeObject('node-b', 'zone-2'),
    serviceObject({ type: 'NodePort', externalIPs: ['203.0.113.9'], ports: [{ name: 'dns', port: 53, protocol: 'UDP', nodePort: 30053 }], ...spec }),
    sliceObject('web', endpoints, { ports: [{ name: 'dns', port: 5353, protocol }] }),
  ]);
  if (errors.length) throw new Error(JSON.stringify(errors));
  return computeNodeRules(state, 'node-a', testConfig);
}
const two: EndpointSpec[] = [{ ip: '10.244.1.9', node: 'node-a' }, { ip: '10.244.2.9', node: 'node-b' }];

test('an endpoint that goes: its flows to the Service port, the external IP and the node port are deleted', (t) => {
  t.deepEqual(staleUDPFlows(rules(two), rules(two.slice(0, 1))), [
    { family: 'IPv4', origDst: '10.96.0.20', origPortDst: 53, dstNat: '10.244.2.9' },
    { family: 'IPv4', origDst: '203.0.113.9', origPortDst: 53, dstNat: '10.244.2.9' },
    { family: 'IPv4', origPortDst: 30053, dstNat: '10.244.2.9' },
  ]);
});

test('an endpoint that stops being ready but still serves (terminating) keeps its flows', (t) => {
  const terminating = [two[0]!, { ...two[1]!, ready: false, serving: true, terminating: true }];
  t.deepEqual(staleUDPFlows(rules(two), rules(terminating)), []);
  const gone = [two[0]!, { ...two[1]!, ready: false, serving: false, terminating: true }];
  t.is(staleUDPFlows(rules(two), rules(gone)).length, 3, 'and loses them once it stops serving');
});

test('an endpoint this node stops using because of topology hints or a Local policy keeps its flows', (t) => {
  const hinted = two.map((endpoint) => ({ ...endpoint, zones: [endpoint.node === 'node-a' ? 'zone-1' : 'zone-2'] }));
  t.deepEqual(staleUDPFlows(rules(two), rules(hinted)), [], 'node-a now picks only zone-1\'s endpoint');
  t.deepEqual(staleUDPFlows(rules(two), rules(two, { externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local' })), []);
});

test('from no endpoints to some: the entries without NAT to the Service port go, nothing of other ports', (t) => {
  t.deepEqual(staleUDPFlows(rules([]), rules(two)), [
    { family: 'IPv4', origDst: '10.96.0.20', origPortDst: 53 },
    { family: 'IPv4', origDst: '203.0.113.9', origPortDst: 53 },
    { family: 'IPv4', origPortDst: 30053 },
  ]);
});

test('TCP ports, unchanged ports and a first sync delete nothing', (t) => {
  const tcp = (endpoints: EndpointSpec[]) => rules(endpoints, { ports: [{ name: 'dns', port: 53, protocol: 'TCP', nodePort: 30053 }] }, 'TCP');
  t.is(tcp(two).families[0]!.servicePorts[0]!.cluster?.endpoints.length, 2);
  t.deepEqual(staleUDPFlows(tcp(two), tcp(two.slice(0, 1))), []);
  t.deepEqual(staleUDPFlows(rules(two), rules(two)), []);
  t.deepEqual(staleUDPFlows(undefined, rules(two)), []);
});
