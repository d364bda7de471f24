import test from 'ava';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { topologyMode } from '../controlplane/compute/topology.js';
import { buildClusterState } from '../controlplane/model/cluster-state.js';
import type { ServicePortRules } from '../rules/node-rules.js';
import { nodeObject, serviceObject, sliceObject, testConfig, type EndpointSpec } from './helpers/objects.js';

// node-a in zone-1, node-b and node-c in zone-2 (unless a test says otherwise).
const ZONES = { 'node-a': 'zone-1', 'node-b': 'zone-2', 'node-c': 'zone-2' } as const;

function portOn(node: keyof typeof ZONES, endpoints: EndpointSpec[], spec: Record<string, unknown> = {}, zones: Partial<Record<keyof typeof ZONES, string>> = ZONES): ServicePortRules {
  const { state, errors } = buildClusterState([
    ...(['node-a', 'node-b', 'node-c'] as const).map((name) => nodeObject(name, zones[name])),
    serviceObject(spec), sliceObject('web', endpoints),
  ]);
  if (errors.length) throw new Error(JSON.stringify(errors));
  return computeNodeRules(state, node, testConfig).families[0]!.servicePorts[0]!;
}
const ips = (group: ServicePortRules['cluster']) => group?.endpoints.map((endpoint) => endpoint.ip) ?? [];

// Three endpoints as the controller hints them for zones: one in zone-1, two in zone-2.
const zoned: EndpointSpec[] = [
  { ip: '10.244.1.9', node: 'node-a', zones: ['zone-1'] },
  { ip: '10.244.2.9', node: 'node-b', zones: ['zone-2'] },
  { ip: '10.244.3.9', node: 'node-c', zones: ['zone-2'] },
];

test('without hints every endpoint serves every node', (t) => {
  const plain = zoned.map(({ zones: _zones, ...endpoint }) => endpoint);
  t.deepEqual(ips(portOn('node-a', plain).cluster), ['10.244.1.9', '10.244.2.9', '10.244.3.9']);
});

test('zone hints: each node uses the endpoints hinted for its zone', (t) => {
  t.deepEqual(ips(portOn('node-a', zoned).cluster), ['10.244.1.9']);
  t.deepEqual(ips(portOn('node-b', zoned).cluster), ['10.244.2.9', '10.244.3.9']);
  t.deepEqual(ips(portOn('node-c', zoned).cluster), ['10.244.2.9', '10.244.3.9']);
});

test('zone hints stop applying when one ready endpoint has none (a slice mid-update): every endpoint', (t) => {
  const partly = [...zoned.slice(0, 2), { ip: '10.244.3.9', node: 'node-c' as const }];
  t.deepEqual(ips(portOn('node-a', partly).cluster), ['10.244.1.9', '10.244.2.9', '10.244.3.9']);
});

test('a not-ready endpoint without hints does not turn them off: only ready endpoints count', (t) => {
  const withUnready = [...zoned, { ip: '10.244.1.8', node: 'node-a' as const, ready: false }];
  t.deepEqual(ips(portOn('node-a', withUnready).cluster), ['10.244.1.9']);
});

test('zone hints that name no endpoint for this node\'s zone, or a node without a zone label: every endpoint', (t) => {
  const elsewhere = zoned.map((endpoint) => ({ ...endpoint, zones: ['zone-2'] }));
  t.deepEqual(ips(portOn('node-a', elsewhere).cluster), ['10.244.1.9', '10.244.2.9', '10.244.3.9'], 'no endpoint for zone-1');
  t.deepEqual(ips(portOn('node-a', zoned, {}, { 'node-b': 'zone-2', 'node-c': 'zone-2' }).cluster), ['10.244.1.9', '10.244.2.9', '10.244.3.9'], 'node-a has no zone');
});

test('node hints (PreferSameNode) come before zone hints, and give way to them when none names this node', (t) => {
  const noded = zoned.map((endpoint) => ({ ...endpoint, nodes: [endpoint.node!] }));
  t.deepEqual(ips(portOn('node-b', noded).cluster), ['10.244.2.9']);
  const otherNodes = zoned.map((endpoint) => ({ ...endpoint, nodes: ['node-c'] }));
  t.deepEqual(ips(portOn('node-b', otherNodes).cluster), ['10.244.2.9', '10.244.3.9'], 'no node hint for node-b: its zone\'s endpoints');
  const halfNoded = [{ ...zoned[0]!, nodes: ['node-a'] }, ...zoned.slice(1)];
  t.deepEqual(ips(portOn('node-a', halfNoded).cluster), ['10.244.1.9'], 'node hints on some endpoints only: zone hints decide');
  t.deepEqual(ips(portOn('node-b', halfNoded).cluster), ['10.244.2.9', '10.244.3.9']);
});

test('without ready endpoints topology is ignored: serving terminating endpoints anywhere serve', (t) => {
  const terminating = zoned.map((endpoint) => ({ ...endpoint, ready: false, serving: true, terminating: true }));
  t.deepEqual(ips(portOn('node-a', terminating).cluster), ['10.244.1.9', '10.244.2.9', '10.244.3.9']);
});

test('Local traffic policies keep this node\'s endpoints whatever the hints; Cluster external traffic follows them', (t) => {
  const crossHinted = zoned.map((endpoint) => ({ ...endpoint, zones: endpoint.node === 'node-b' ? ['zone-1'] : ['zone-2'] }));
  const internalLocal = portOn('node-b', crossHinted, { internalTrafficPolicy: 'Local' });
  t.is(internalLocal.internal, 'local');
  t.deepEqual(ips(internalLocal.local), ['10.244.2.9'], 'hinted for zone-1, still node-b\'s own endpoint');
  const externalLocal = portOn('node-b', crossHinted, { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] });
  t.deepEqual(ips(externalLocal.local), ['10.244.2.9']);
  t.deepEqual(ips(externalLocal.cluster), ['10.244.1.9', '10.244.3.9'], 'pods and the node itself use the cluster group, narrowed to zone-2\'s hints');
  const externalCluster = portOn('node-a', zoned, { type: 'NodePort', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] });
  t.deepEqual(ips(externalCluster.cluster), ['10.244.1.9'], 'a node port under Cluster policy uses the zone\'s endpoints');
});

test('topologyMode names the mode that applies', (t) => {
  const endpoint = (zones: string[], nodes: string[], ready = true) => ({ ip: '10.0.0.1', nodeName: '', conditions: { ready, serving: ready, terminating: false }, hints: { zones, nodes } });
  const node = { name: 'node-a', zone: 'zone-1' };
  t.is(topologyMode([], node), undefined);
  t.is(topologyMode([endpoint(['zone-1'], [])], node), 'PreferSameZone');
  t.is(topologyMode([endpoint(['zone-1'], ['node-a'])], node), 'PreferSameNode');
  t.is(topologyMode([endpoint(['zone-1'], ['node-b'])], node), 'PreferSameZone');
  t.is(topologyMode([endpoint(['zone-2'], ['node-b'])], node), undefined);
  t.is(topologyMode([endpoint(['zone-1'], [], false)], node), undefined, 'no ready endpoint');
});
