import test from 'ava';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { buildClusterState } from '../controlplane/model/cluster-state.js';
import { canonicalCIDR, canonicalIP, compareAddresses, ipv4Value } from '../controlplane/model/ip.js';
import { printable } from '../controlplane/model/printable.js';
import { parseManifest } from '../controlplane/sources/manifests.js';
import type { Service } from '../controlplane/model/types.js';
import { nodeObject, serviceObject, sliceObject } from './helpers/objects.js';

test('every dotted quad reads as Kubernetes reads it: leading zeros are decimal (ParseIPSloppy), octets above 255 are refused', (t) => {
  const octet = fc.oneof(fc.integer({ min: 0, max: 255 }).map(String), fc.integer({ min: 0, max: 99 }).map((n) => `0${n}`), fc.integer({ min: 256, max: 999 }).map(String));
  fc.assert(fc.property(fc.tuple(octet, octet, octet, octet), (octets) => {
    const text = octets.join('.');
    const values = octets.map(Number);
    // Without leading zeros ipaddr.js agrees; with them it would read octal, Kubernetes reads decimal.
    const expected = values.every((value) => value <= 255) ? ipaddr.IPv4.parse(values.join('.')).toString() : undefined;
    t.is(canonicalIP(text), expected, text);
  }), { numRuns: 2000 });
  t.is(canonicalIP('010.001.002.003'), '10.1.2.3');
  t.is(canonicalCIDR('010.000.000.000/8'), '10.0.0.0/8');
});

test('IP addresses are canonicalised and non-Kubernetes forms are refused', (t) => {
  t.is(canonicalIP('10.0.0.1'), '10.0.0.1');
  t.is(canonicalIP('FD00:0:0::1'), 'fd00::1');
  for (const bad of ['10', '0x0a.0.0.1', '10.0.0.256', '::ffff:10.0.0.1', 'fe80::1%eth0', '', 'a b']) {
    t.is(canonicalIP(bad), undefined, bad);
  }
});

test('CIDRs must be in network form', (t) => {
  t.is(canonicalCIDR('10.244.0.0/16'), '10.244.0.0/16');
  t.is(canonicalCIDR('fd00:244:0:0::/56'), 'fd00:244::/56');
  for (const bad of ['10.244.1.0/16', '10.0.0.0/33', '10.0.0.0', '10.0.0.0/-1', 'fd00::/129']) t.is(canonicalCIDR(bad), undefined, bad);
});

test('a Service is read with the API defaults applied', (t) => {
  const { state, errors } = buildClusterState([serviceObject({ ports: [{ port: 80 }] })]);
  t.deepEqual(errors, []);
  t.deepEqual(state.services, [{
    namespace: 'default', name: 'web', type: 'ClusterIP', clusterIPs: ['10.96.0.20'],
    ports: [{ name: '', protocol: 'TCP', port: 80, nodePort: 0, targetPort: 80 }],
    externalIPs: [], loadBalancerIPs: [], loadBalancerSourceRanges: undefined,
    externalTrafficPolicy: 'Cluster', internalTrafficPolicy: 'Cluster', affinitySeconds: 0, healthCheckNodePort: 0, balancing: undefined,
    selector: undefined, publishNotReadyAddresses: false,
  }]);
});

test('headless and ExternalName Services are left out without an error', (t) => {
  const { state, errors } = buildClusterState([
    serviceObject({ name: 'headless', clusterIPs: ['None'] }),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'ext', namespace: 'x' }, spec: { type: 'ExternalName', externalName: 'example.com' } },
  ]);
  t.deepEqual(errors, []);
  t.deepEqual(state.services, []);
});

test('a Service labelled service.kubernetes.io/service-proxy-name belongs to another proxy and is left out, whatever the value', (t) => {
  const labelled = (value: string) => ({ ...serviceObject({ name: `other-${value.length}` }), metadata: { name: `other-${value.length}`, namespace: 'default', labels: { 'service.kubernetes.io/service-proxy-name': value } } });
  const { state, errors } = buildClusterState([labelled('cilium'), labelled(''), serviceObject({ name: 'mine', clusterIPs: ['10.96.0.21'] })]);
  t.deepEqual(errors, []);
  t.deepEqual(state.services.map((service) => service.name), ['mine']);
});

// Only what a Service cannot be without drops it: a cluster IP, a usable port, its name.
const invalidServices: [string, Record<string, unknown>, string][] = [
  ['an invalid cluster IP', { clusterIPs: ['10.96.0.300'] }, 'spec.clusterIPs[0]'],
  ['two cluster IPs of one family', { clusterIPs: ['10.96.0.1', '10.96.0.2'] }, 'spec.clusterIPs'],
  ['its only port out of range', { ports: [{ name: 'a', port: 70000 }] }, 'spec.ports[0].port'],
  ['its only port fractional', { ports: [{ name: 'a', port: 80.5 }] }, 'spec.ports[0].port'],
  ['its only port given as a string', { ports: [{ name: 'a', port: '80' }] }, 'spec.ports[0].port'],
  ['its only port of an unknown protocol', { ports: [{ name: 'a', port: 80, protocol: 'ICMP' }] }, 'spec.ports[0].protocol'],
  ['a missing cluster IP', { clusterIPs: [], clusterIP: undefined }, 'spec.clusterIP'],
  ['its only port named so that it could inject', { ports: [{ name: 'a" drop', port: 80 }] }, 'spec.ports[0].name'],
];

for (const [what, spec, field] of invalidServices) {
  test(`a Service with ${what} is skipped with an error naming ${field}`, (t) => {
    const bad = serviceObject({ name: 'bad', namespace: 'shop', ...spec });
    const { state, errors } = buildClusterState([bad, serviceObject({ name: 'good' })]);
    t.deepEqual(state.services.map((service) => service.name), ['good']);
    t.is(errors.length, 1);
    t.like(errors[0], { kind: 'Service', object: 'shop/bad', field });
    t.true(errors[0]!.message.startsWith(`${field}: `));
  });
}

// Any other field that does not read is a warning naming object, field and value; the Service works without it.
const toleratedFields: [string, Record<string, unknown>, string, (service: Service) => unknown, unknown][] = [
  ['an unknown type', { type: 'Magic' }, 'spec.type', (s) => s.type, 'ClusterIP'],
  ['one invalid external IP among others', { externalIPs: ['203.0.113.x', '203.0.113.7'] }, 'spec.externalIPs[0]', (s) => s.externalIPs, ['203.0.113.7']],
  ['one invalid source range among others', { type: 'LoadBalancer', ports: [{ name: 'a', port: 80, nodePort: 30001 }], loadBalancerSourceRanges: ['10.0.0.0/40', '192.0.2.0/24'] }, 'spec.loadBalancerSourceRanges[0]', (s) => s.loadBalancerSourceRanges, ['192.0.2.0/24']],
  ['only invalid source ranges (nobody from outside: fails closed)', { type: 'LoadBalancer', ports: [{ name: 'a', port: 80, nodePort: 30001 }], loadBalancerSourceRanges: ['bogus'] }, 'spec.loadBalancerSourceRanges[0]', (s) => s.loadBalancerSourceRanges, []],
  ['a NodePort port without a node port', { type: 'NodePort' }, 'spec.ports[0].nodePort', (s) => s.ports[0]!.nodePort, 0],
  ['an unnamed port among several', { ports: [{ port: 80 }, { name: 'b', port: 81 }] }, 'spec.ports[0].name', (s) => s.ports.map((port) => port.name), ['b']],
  ['a duplicate port', { ports: [{ name: 'a', port: 80 }, { name: 'a', port: 81 }] }, 'spec.ports[1]', (s) => s.ports.map((port) => port.port), [80]],
  ['a port name that could inject, beside a good port', { ports: [{ name: 'a" drop', port: 80 }, { name: 'b', port: 81 }] }, 'spec.ports[0].name', (s) => s.ports.map((port) => port.name), ['b']],
  ['an affinity timeout out of range', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } }, 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', (s) => s.affinitySeconds, 10800],
  ['an unknown traffic policy', { type: 'NodePort', ports: [{ name: 'a', port: 80, nodePort: 30001 }], externalTrafficPolicy: 'Nearest' }, 'spec.externalTrafficPolicy', (s) => s.externalTrafficPolicy, 'Cluster'],
];

for (const [what, spec, field, read, expected] of toleratedFields) {
  test(`a Service with ${what} is read, with a warning naming ${field}`, (t) => {
    const { state, errors, warnings } = buildClusterState([serviceObject({ name: 'odd', namespace: 'shop', ...spec })]);
    t.deepEqual(errors, []);
    t.is(state.services.length, 1);
    t.deepEqual(read(state.services[0]!), expected);
    const warning = warnings.find((candidate) => candidate.field === field);
    t.like(warning, { kind: 'Service', object: 'shop/odd' }, JSON.stringify(warnings));
    t.regex(warning!.message, new RegExp(`^${field.replace(/[.[\]]/g, '\\$&')}: .*, got .*\\(ignored: `));
  });
}

test('addresses and ranges with surrounding whitespace are read, as the API server trims them', (t) => {
  const { state, warnings } = buildClusterState([serviceObject({ type: 'LoadBalancer', externalIPs: [' 203.0.113.7 '], loadBalancerSourceRanges: ['192.0.2.0/24\n'], ports: [{ name: 'a', port: 80, nodePort: 30001 }] }, { loadBalancer: { ingress: [{ ip: '198.51.100.1 ' }] } })]);
  t.deepEqual(warnings, []);
  t.deepEqual([state.services[0]!.externalIPs, state.services[0]!.loadBalancerSourceRanges, state.services[0]!.loadBalancerIPs], [['203.0.113.7'], ['192.0.2.0/24'], ['198.51.100.1']]);
});

test('an error echoes the value that was received', (t) => {
  const { errors } = buildClusterState([serviceObject({ ports: [{ name: 'a', port: 70000 }] })]);
  t.regex(errors[0]!.message, /got 70000/);
});

test('object names that are not DNS names are refused, so they can never reach a rule', (t) => {
  const { errors } = buildClusterState([
    serviceObject({ name: 'web"; flush ruleset; "' }),
    serviceObject({ name: 'ok', namespace: 'Upper' }),
    serviceObject({ name: 'a'.repeat(64) }),
  ]);
  t.deepEqual(errors.map((error) => error.field), ['metadata.name', 'metadata.namespace', 'metadata.name']);
});

test('load-balancer ingress keeps VIP addresses only, and the source-range annotation is a fallback', (t) => {
  const { state } = buildClusterState([serviceObject(
    {
      type: 'LoadBalancer', ports: [{ name: 'a', port: 80, nodePort: 30001 }],
    },
    { loadBalancer: { ingress: [{ ip: '198.51.100.1' }, { ip: '198.51.100.2', ipMode: 'Proxy' }, { hostname: 'lb.example.com' }] } },
  ), {
    ...serviceObject({ name: 'annotated', type: 'LoadBalancer', ports: [{ name: 'a', port: 80, nodePort: 30002 }] }),
    metadata: { name: 'annotated', namespace: 'default', annotations: { 'service.beta.kubernetes.io/load-balancer-source-ranges': '10.1.2.3/8, fd00::/64' } },
  }]);
  t.deepEqual(state.services[0]!.loadBalancerIPs, ['198.51.100.1']);
  t.deepEqual(state.services[1]!.loadBalancerSourceRanges, ['10.0.0.0/8', 'fd00::/64']);
});

test('endpoint conditions default as the API documents: ready and serving true, terminating false', (t) => {
  const slice = sliceObject('web', [{ ip: '10.244.1.11', node: 'node-a' }]);
  delete (slice.endpoints[0] as { conditions?: unknown }).conditions;
  const { state } = buildClusterState([slice]);
  t.deepEqual(state.endpointSlices[0]!.endpoints[0]!.conditions, { ready: true, serving: true, terminating: false });
  const notReady = buildClusterState([sliceObject('web', [{ ip: '10.244.1.11', ready: false }])]).state;
  t.deepEqual(notReady.endpointSlices[0]!.endpoints[0]!.conditions, { ready: false, serving: false, terminating: false });
});

test('an EndpointSlice with an address of the wrong family is skipped and named', (t) => {
  const { state, errors } = buildClusterState([sliceObject('web', [{ ip: 'fd00::1' }], { addressType: 'IPv4', namespace: 'shop', name: 'web-x' })]);
  t.deepEqual(state.endpointSlices, []);
  t.like(errors[0], { kind: 'EndpointSlice', object: 'shop/web-x', field: 'endpoints[0].addresses[0]' });
});

test('an EndpointSlice without the service-name label is skipped and named', (t) => {
  const slice = sliceObject('web', [{ ip: '10.244.1.11' }]);
  slice.metadata.labels = {} as typeof slice.metadata.labels;
  const { errors } = buildClusterState([slice]);
  t.like(errors[0], { field: 'metadata.labels.kubernetes.io/service-name' });
});

test('FQDN EndpointSlices are ignored', (t) => {
  const { state, errors } = buildClusterState([{ ...sliceObject('web', [{ ip: '10.244.1.11' }]), addressType: 'FQDN', endpoints: [{ addresses: ['example.com'] }] }]);
  t.deepEqual(errors, []);
  t.deepEqual(state.endpointSlices, []);
});

test('a Node gives its internal and external IPs, pod CIDRs and zone', (t) => {
  const node = nodeObject('node-a');
  node.status.addresses.push({ type: 'ExternalIP', address: '203.0.113.1' });
  const { state } = buildClusterState([node, nodeObject('node-b', 'zone-2')]);
  t.deepEqual(state.nodes, [
    { name: 'node-a', internalIPs: ['192.168.56.11', 'fd00:56::11'], externalIPs: ['203.0.113.1'], podCIDRs: ['10.244.1.0/24', 'fd00:244:0:1::/64'], zone: '' },
    { name: 'node-b', internalIPs: ['192.168.56.12', 'fd00:56::12'], externalIPs: [], podCIDRs: ['10.244.2.0/24', 'fd00:244:0:2::/64'], zone: 'zone-2' },
  ]);
});

test('an endpoint gives its topology hints; a hint that is not a name is an error naming its path', (t) => {
  const { state } = buildClusterState([sliceObject('web', [{ ip: '10.244.1.11', zones: ['zone-1'], nodes: ['node-a'] }, { ip: '10.244.1.12' }])]);
  t.deepEqual(state.endpointSlices[0]!.endpoints.map((endpoint) => endpoint.hints), [{ zones: ['zone-1'], nodes: ['node-a'] }, { zones: [], nodes: [] }]);
  const bad = sliceObject('web', [{ ip: '10.244.1.11' }]);
  (bad.endpoints[0] as Record<string, unknown>).hints = { forZones: [{ name: 7 }] };
  const { errors } = buildClusterState([bad]);
  t.is(errors[0]?.field, 'endpoints[0].hints.forZones[0].name');
});

test('Lists are expanded and kinds ferry does not use are ignored', (t) => {
  const { state, errors } = buildClusterState([{ apiVersion: 'v1', kind: 'List', items: [serviceObject(), { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' } }] }]);
  t.deepEqual(errors, []);
  t.is(state.services.length, 1);
});

test('ServiceCIDR objects are read', (t) => {
  const { state } = buildClusterState([{ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.96.0.0/16', 'fd00:96::/112'] } }]);
  t.deepEqual(state.serviceCIDRs, [{ name: 'kubernetes', cidrs: ['10.96.0.0/16', 'fd00:96::/112'] }]);
});

test('multi-document YAML is read, empty documents skipped, and a syntax error names the file', (t) => {
  t.is(parseManifest('---\nkind: A\n---\n\n---\nkind: B\n', 'x.yaml').length, 2);
  t.throws(() => parseManifest('kind: [unclosed\n', 'broken.yaml'), { message: /^broken\.yaml: / });
});

test('an object whose name and namespace are empty is still named in its error', (t) => {
  // fast-check found it (test/kernel-hostile-input.test.ts): the message pointed at nothing.
  const { errors } = buildClusterState([serviceObject({ name: '', namespace: '' })]);
  t.is(errors.length, 1);
  t.is(errors[0]!.object, '<unnamed>');
  t.regex(errors[0]!.message, /^metadata\.namespace: must be a DNS name/);
});

test('names and values in errors and warnings are printable: control and bidi characters are escaped', (t) => {
  const evil = 'web\u202Etxt.exe\nferry: forged line';
  const { errors, warnings } = buildClusterState([
    serviceObject({ name: evil }),
    { ...serviceObject({ name: 'ok' }), spec: { ...serviceObject().spec, ['ports\u2066']: [] } },
    serviceObject({ name: 'typed', ports: [{ name: 'http', port: 80, protocol: 'TCP\u0007' }] }),
  ]);
  const texts = [...errors, ...warnings].flatMap((problem) => [problem.object, problem.field, problem.message]);
  t.true(texts.length >= 6, JSON.stringify(texts));
  for (const text of texts) t.notRegex(text, /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u, text);
  t.true(errors.some((error) => error.object === 'default/web\\u{202e}txt.exe\\u{000a}ferry: forged line'), JSON.stringify(errors));
  t.true(warnings.some((warning) => warning.field === 'spec.ports\\u{2066}'), JSON.stringify(warnings));
});

test('printable leaves every other character as it is and escapes every unprintable one', (t) => {
  fc.assert(fc.property(fc.string({ unit: 'binary' }), (text) => {
    const shown = printable(text);
    const unprintable = /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;
    return !unprintable.test(shown) && shown.replace(/\\u\{[0-9a-f]{4}\}/g, '') === text.replace(new RegExp(unprintable.source, 'gu'), '');
  }));
  t.is(printable('zone-a/web:80'), 'zone-a/web:80');
});

test('addresses sort numerically, IPv4 before IPv6, and a dotted quad is read as its 32-bit value', (t) => {
  t.deepEqual(['10.0.0.10', 'fd00::2', '10.0.0.9', '9.255.255.255', 'fd00::10', '10.0.1.0'].sort(compareAddresses),
    ['9.255.255.255', '10.0.0.9', '10.0.0.10', '10.0.1.0', 'fd00::2', 'fd00::10']);
  t.is(ipv4Value('10.1.2.3'), 10 * 2 ** 24 + 1 * 2 ** 16 + 2 * 2 ** 8 + 3);
  t.is(ipv4Value('255.255.255.255'), 2 ** 32 - 1);
  t.is(ipv4Value('fd00::1'), undefined);
  fc.assert(fc.property(fc.ipV4(), fc.ipV4(), (a, b) => Math.sign(compareAddresses(a, b)) === Math.sign((ipv4Value(a)! - ipv4Value(b)!)) && ipv4Value(a) === a.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0)));
});
