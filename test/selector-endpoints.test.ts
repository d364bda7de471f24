import test from 'ava';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { buildClusterState } from '../controlplane/model/cluster-state.js';
import { selects } from '../controlplane/model/selector-endpoints.js';
import { nodeObject, serviceObject, sliceObject, testConfig } from './helpers/objects.js';

interface PodSpec { name: string; ip?: string; ipv6?: string; labels?: Record<string, string>; node?: string; ready?: boolean; deleting?: boolean; phase?: string; ports?: { name: string; containerPort: number; protocol?: string }[]; namespace?: string }

/** A Pod as the API returns it: labels, node, IPs, Ready condition, named container ports. */
function pod(spec: PodSpec) {
  const ips = [spec.ip, spec.ipv6].filter(Boolean).map((ip) => ({ ip }));
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: spec.name, namespace: spec.namespace ?? 'default', labels: spec.labels ?? { app: 'web' }, ...(spec.deleting ? { deletionTimestamp: '2026-11-24T00:00:00Z' } : {}) },
    spec: { nodeName: spec.node ?? 'node-a', containers: [{ name: 'main', image: 'web', ports: spec.ports ?? [{ name: 'http', containerPort: 8080 }] }] },
    status: { phase: spec.phase ?? 'Running', podIP: ips[0]?.ip, podIPs: ips, conditions: [{ type: 'Ready', status: spec.ready === false ? 'False' : 'True' }] },
  };
}

const web = (extra: Record<string, unknown> = {}) => serviceObject({ selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }], ...extra });

test('a selector selects Pods whose labels hold every pair; an empty selector selects nothing', (t) => {
  t.true(selects({ app: 'web' }, { app: 'web', tier: 'front' }));
  t.false(selects({ app: 'web', tier: 'back' }, { app: 'web', tier: 'front' }));
  t.false(selects({}, { app: 'web' }));
});

test('endpoints come from selected Pods: ready from the Ready condition, terminating from deletionTimestamp', (t) => {
  const { state, errors, warnings } = buildClusterState([
    web(),
    pod({ name: 'ready', ip: '10.244.1.10', ipv6: 'fd00:244:0:1::10' }),
    pod({ name: 'starting', ip: '10.244.1.11', ready: false }),
    pod({ name: 'leaving', ip: '10.244.1.12', deleting: true }),
    pod({ name: 'done', ip: '10.244.1.13', phase: 'Succeeded' }),
    pod({ name: 'elsewhere', ip: '10.244.1.14', namespace: 'other' }),
    pod({ name: 'other-app', ip: '10.244.1.15', labels: { app: 'db' } }),
    pod({ name: 'no-ip', labels: { app: 'web' } }),
  ]);
  t.deepEqual(errors, []);
  t.deepEqual(warnings, []);
  const v4 = state.endpointSlices.filter((slice) => slice.family === 'IPv4');
  t.is(v4.length, 1);
  t.like(v4[0], { serviceName: 'web', source: 'selector', ports: [{ name: 'http', protocol: 'TCP', port: 8080 }] });
  t.deepEqual(v4[0]!.endpoints.map((endpoint) => [endpoint.ip, endpoint.conditions]), [
    ['10.244.1.12', { ready: false, serving: true, terminating: true }],
    ['10.244.1.10', { ready: true, serving: true, terminating: false }],
    ['10.244.1.11', { ready: false, serving: false, terminating: false }],
  ]);
  t.deepEqual(state.endpointSlices.filter((slice) => slice.family === 'IPv6').flatMap((slice) => slice.endpoints.map((endpoint) => endpoint.ip)), ['fd00:244:0:1::10']);
});

test('a named target port resolves per Pod: two Pods may serve it on different numbers, a Pod without it is not an endpoint of that port', (t) => {
  const { state } = buildClusterState([
    nodeObject('node-a'),
    serviceObject({ selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'metrics', port: 9100, targetPort: 9100 }] }),
    pod({ name: 'old', ip: '10.244.1.10', ports: [{ name: 'http', containerPort: 8080 }] }),
    pod({ name: 'new', ip: '10.244.1.11', ports: [{ name: 'http', containerPort: 9090 }] }),
    pod({ name: 'sidecar-only', ip: '10.244.1.12', ports: [{ name: 'admin', containerPort: 7000 }] }),
  ]);
  const rules = computeNodeRules(state, 'node-a', testConfig).families[0]!.servicePorts;
  const http = rules.find((port) => port.id === 'default/web:http/tcp')!;
  t.deepEqual(http.cluster!.endpoints.map((endpoint) => `${endpoint.ip}:${endpoint.port}`), ['10.244.1.10:8080', '10.244.1.11:9090']);
  const metrics = rules.find((port) => port.id === 'default/web:metrics/tcp')!;
  t.deepEqual(metrics.cluster!.endpoints.map((endpoint) => `${endpoint.ip}:${endpoint.port}`), ['10.244.1.10:9100', '10.244.1.11:9100', '10.244.1.12:9100'],
    'a numeric target port needs no container port');
});

test('publishNotReadyAddresses makes not-ready Pods ready endpoints', (t) => {
  const { state } = buildClusterState([web({ publishNotReadyAddresses: true }), pod({ name: 'starting', ip: '10.244.1.11', ready: false })]);
  t.true(state.endpointSlices[0]!.endpoints[0]!.conditions.ready);
});

test('EndpointSlices in the input win over Pods', (t) => {
  const { state } = buildClusterState([web(), sliceObject('web', [{ ip: '10.244.9.9' }]), pod({ name: 'ready', ip: '10.244.1.10' })]);
  t.deepEqual(state.endpointSlices.map((slice) => [slice.source, slice.endpoints[0]!.ip]), [['EndpointSlice', '10.244.9.9']]);
});

test('a selector that matches nothing is a warning, and a Pod with an invalid IP is skipped and named', (t) => {
  const { errors, warnings } = buildClusterState([web(), pod({ name: 'broken', ip: '10.244.1.300' }), pod({ name: 'db', ip: '10.244.1.5', labels: { app: 'db' } })]);
  t.like(errors[0], { kind: 'Pod', object: 'default/broken', field: 'status.podIPs[0].ip' });
  t.like(warnings[0], { kind: 'Service', object: 'default/web', field: 'spec.selector' });
});
