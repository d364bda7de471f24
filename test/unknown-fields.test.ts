import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import test from 'ava';
import { buildClusterState } from '../controlplane/model/cluster-state.js';
import type { ModelError } from '../controlplane/model/types.js';
import { API_SCHEMA } from '../controlplane/model/api-schema.js';
import { clientNodeFields } from '../controlplane/model/client-node-schema.js';
import { closestName, LOOK_INTO, OBJECT_SCHEMAS, reachableSchema, schemaFields } from '../controlplane/model/unknown-fields.js';
import { ManifestError, readManifests } from '../controlplane/sources/manifests.js';
import { nodeObject, serviceObject, sliceObject } from './helpers/objects.js';

const unknownFieldWarnings = (warnings: ModelError[]) => warnings.filter((warning) => warning.message.includes(': unknown field'));

/** A Pod of the shop's web Deployment on node-a, as a user writes one. */
function podObject(spec: Record<string, unknown> = {}, status: Record<string, unknown> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' } },
    spec: { nodeName: 'node-a', containers: [{ name: 'web', image: 'web:1', ports: [{ name: 'http', containerPort: 8080 }] }], ...spec },
    status: { phase: 'Running', podIPs: [{ ip: '10.244.1.11' }], conditions: [{ type: 'Ready', status: 'True' }], ...status },
  };
}

test('a typo in a Service field is a warning naming the object and the path, and the Service is still read', (t) => {
  // GIVEN a Service whose port and traffic policy fields are misspelt
  const service = serviceObject({ name: 'web', namespace: 'shop', type: 'NodePort', externalTraficPolicy: 'Local', ports: [{ name: 'http', port: 80, targetPrt: 8080, nodePort: 30080 }] });
  // WHEN it is read
  const { state, errors, warnings } = buildClusterState([service]);
  // THEN each misspelt field is named with its path, and what ferry understood is what the API would have
  t.deepEqual(errors, []);
  t.deepEqual(warnings, [
    { kind: 'Service', object: 'shop/web', field: 'spec.ports[0].targetPrt', message: 'spec.ports[0].targetPrt: unknown field (did you mean targetPort?)' },
    { kind: 'Service', object: 'shop/web', field: 'spec.externalTraficPolicy', message: 'spec.externalTraficPolicy: unknown field (did you mean externalTrafficPolicy?)' },
  ]);
  t.like(state.services[0], { name: 'web', externalTrafficPolicy: 'Cluster', ports: [{ name: 'http', protocol: 'TCP', port: 80, nodePort: 30080, targetPort: 80 }] });
});

test('unknown fields are found at every depth of a Service, a field without a likely match gets no suggestion', (t) => {
  const service = {
    ...serviceObject({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIp: { timeoutSeconds: 60 } } }, { loadBalancer: { ingress: [{ ip: '198.51.100.1', ipmode: 'VIP' }] }, conditons: [] }),
    metadata: { name: 'web', namespace: 'default', lables: { app: 'web' } },
    extra: true,
  };
  const { warnings } = buildClusterState([service]);
  t.deepEqual(warnings.map((warning) => warning.message), [
    'metadata.lables: unknown field (did you mean labels?)',
    'spec.sessionAffinityConfig.clientIp: unknown field (did you mean clientIP?)',
    'status.loadBalancer.ingress[0].ipmode: unknown field (did you mean ipMode?)',
    'status.conditons: unknown field (did you mean conditions?)',
    'extra: unknown field',
  ]);
});

test('every ServiceSpec field of Kubernetes 1.33 is known', (t) => {
  const fields = schemaFields('V1ServiceSpec')!;
  for (const field of ['clusterIP', 'clusterIPs', 'ports', 'selector', 'type', 'externalIPs', 'sessionAffinity', 'sessionAffinityConfig', 'loadBalancerIP',
    'loadBalancerSourceRanges', 'externalName', 'externalTrafficPolicy', 'healthCheckNodePort', 'publishNotReadyAddresses', 'ipFamilies', 'ipFamilyPolicy',
    'allocateLoadBalancerNodePorts', 'loadBalancerClass', 'internalTrafficPolicy', 'trafficDistribution']) {
    t.true(fields.has(field), field);
  }
  t.deepEqual([...schemaFields('V1ServicePort')!.keys()].sort(), ['appProtocol', 'name', 'nodePort', 'port', 'protocol', 'targetPort']);
});

test('typos in an EndpointSlice are warnings with the exact path', (t) => {
  const slice = sliceObject('web', [{ ip: '10.244.1.9', node: 'node-a' }], { ports: [{ name: 'http', port: 8080, protocl: 'TCP' }] });
  const endpoint = slice.endpoints[0]! as Record<string, unknown>;
  endpoint.conditions = { ready: true, redy: true };
  endpoint.nodename = 'node-a';
  const { warnings } = buildClusterState([slice]);
  t.deepEqual(warnings.map((warning) => [warning.kind, warning.object, warning.field]), [
    ['EndpointSlice', 'default/web-ipv4', 'endpoints[0].conditions.redy'],
    ['EndpointSlice', 'default/web-ipv4', 'endpoints[0].nodename'],
    ['EndpointSlice', 'default/web-ipv4', 'ports[0].protocl'],
  ]);
  t.is(warnings[1]!.message, 'endpoints[0].nodename: unknown field (did you mean nodeName?)');
});

test('typos in the parts of a Pod that ferry reads are warnings; the rest of a Pod is not checked', (t) => {
  const pod = podObject(
    { nodename: 'node-a', containers: [{ name: 'web', image: 'web:1', ports: [{ name: 'http', containerport: 8080 }], livenessProbe: { anything: 1 } }], volumes: [{ name: 'v', whatever: {} }] },
    { podIps: [{ ip: '10.244.1.11' }], containerStatuses: [{ notAField: true }] },
  );
  const { warnings } = buildClusterState([pod]);
  t.deepEqual(warnings.map((warning) => warning.message), [
    'spec.containers[0].ports[0].containerport: unknown field (did you mean containerPort?)',
    'spec.nodename: unknown field (did you mean nodeName?)',
    'status.podIps: unknown field (did you mean podIPs?)',
  ]);
  t.true(warnings.every((warning) => warning.kind === 'Pod' && warning.object === 'shop/web-1'));
});

test('typos in a Node\'s spec and addresses are warnings; the rest of its status is not checked', (t) => {
  const node = nodeObject('node-a') as unknown as { spec: Record<string, unknown>; status: Record<string, unknown> };
  node.spec.podCidrs = [];
  node.status.addresses = [{ type: 'InternalIP', adress: '192.168.56.11' }];
  node.status.nodeInfo = { kernelVersion: '6.12', newField: 'x' };
  node.status.adresses = [];
  const { warnings } = buildClusterState([node]);
  t.deepEqual(warnings.map((warning) => warning.field), ['spec.podCidrs', 'status.addresses[0].adress', 'status.adresses']);
});

test('free-form parts are never checked: labels, annotations, selector, managedFields, conditions', (t) => {
  const service = {
    ...serviceObject({ selector: { 'any/key': 'v' } }, { conditions: [{ type: 'X', status: 'True', somethingNew: 1 }] }),
    metadata: {
      name: 'web', namespace: 'default', labels: { 'weird key': 'x' }, annotations: { 'targetPrt': 'x' },
      managedFields: [{ manager: 'm', fieldsV1: { 'f:spec': { 'f:whatever': {} } }, futureField: 1 }],
      ownerReferences: [{ kind: 'X', name: 'x', uid: 'u', apiVersion: 'v1', futureField: 1 }],
    },
  };
  const slice = sliceObject('web', [{ ip: '10.244.1.9' }]) as Record<string, unknown>;
  (slice.endpoints as Record<string, unknown>[])[0]!.deprecatedTopology = { 'topology.kubernetes.io/zone': 'a' };
  t.deepEqual(buildClusterState([service, slice]).warnings, []);
});

test('a skipped object is warned about too: the misspelt field is often why it is invalid', (t) => {
  const { errors, warnings } = buildClusterState([serviceObject({ name: 'bad', ports: [{ name: 'http', prot: 80 }] })]);
  t.like(errors[0], { kind: 'Service', object: 'default/bad', field: 'spec.ports[0].port' });
  t.like(warnings[0], { kind: 'Service', object: 'default/bad', field: 'spec.ports[0].prot', message: 'spec.ports[0].prot: unknown field (did you mean port?)' });
});

test('an object read again (an informer\'s unchanged object) gives its warnings again', (t) => {
  const service = serviceObject({ externalTraficPolicy: 'Local' });
  t.is(buildClusterState([service]).warnings.length, 1);
  t.is(buildClusterState([service]).warnings.length, 1);
});

test('a kind or apiVersion ferry does not read is a warning naming the object; everything else is still read', (t) => {
  const { state, errors, warnings } = buildClusterState([
    { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop' }, spec: { replicas: 3 } },
    { apiVersion: 'v1', kind: 'Servce', metadata: { name: 'web', namespace: 'shop' }, spec: {} },
    { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'db', namespace: 'shop' } },
    { apiVersion: 'discovery.k8s.io/v1beta1', kind: 'EndpointSlice', metadata: { name: 'web-1', namespace: 'shop' } },
    { metadata: { name: 'nameless' } },
    { apiVersion: 'v1', kind: 'List', items: [serviceObject()] },
  ]);
  t.deepEqual(errors, []);
  t.deepEqual(warnings.map((warning) => `${warning.kind} ${warning.object}: ${warning.message}`), [
    'Deployment shop/web: not read by ferry (ignored)',
    'Servce shop/web: not read by ferry (ignored; did you mean Service?)',
    'Endpoints shop/db: not read by ferry (ignored; ferry reads EndpointSlices)',
    'EndpointSlice shop/web-1: apiVersion: discovery.k8s.io/v1beta1 is not read by ferry (ignored; EndpointSlice is read as discovery.k8s.io/v1)',
    'object nameless: kind: not set (ignored)',
  ]);
  t.deepEqual(warnings.map((warning) => warning.field), ['kind', 'kind', 'kind', 'apiVersion', 'kind']);
  t.deepEqual(state.services.map((service) => service.name), ['web']);
});

test('a likely typo is suggested only when one candidate is clearly closest', (t) => {
  t.is(closestName('targetPrt', ['port', 'targetPort', 'nodePort']), 'targetPort');
  t.is(closestName('nodename', ['nodeName', 'hostname']), 'nodeName');
  t.is(closestName('prot', ['port', 'name']), 'port');
  t.is(closestName('foo', ['port', 'name']), undefined);
  t.is(closestName('ab', ['ac', 'ad']), undefined, 'a tie suggests nothing');
});

test('the schema table names types and fields that client-node has, so an upgrade that renames one fails here', (t) => {
  for (const type of [...Object.values(OBJECT_SCHEMAS), ...Object.keys(LOOK_INTO)]) t.truthy(schemaFields(type), type);
  for (const [type, fields] of Object.entries(LOOK_INTO)) for (const field of fields) t.true(schemaFields(type)!.has(field), `${type}.${field}`);
});

test('api-schema.ts is what the installed client-node says of every type ferry walks (after an upgrade: npm run schema)', async (t) => {
  t.deepEqual(API_SCHEMA, reachableSchema(await clientNodeFields()));
  t.true(Object.keys(API_SCHEMA).length > 20, 'the walk reached the nested types');
});

test('real kubectl get -o yaml output (status, managedFields, defaults) reads without a warning', async (t) => {
  const { state, errors, warnings } = buildClusterState(await readManifests(['test/fixtures/kubectl-get.yaml']));
  t.deepEqual(errors, []);
  t.deepEqual(warnings, []);
  t.deepEqual(state.services.map((service) => service.name), ['web', 'legacy-x7k2q'], 'the ExternalName Service is left out');
  t.deepEqual(state.endpointSlices.map((slice) => slice.name), ['web-8xq2z']);
  t.deepEqual(state.nodes.map((node) => node.name), ['node-a']);
  t.deepEqual(state.pods.map((pod) => pod.name), ['web-7d9f8c6b5-x2k9p']);
  t.deepEqual(state.serviceCIDRs.map((cidr) => cidr.name), ['kubernetes']);
});

test('no example or fixture manifest has an unknown field', async (t) => {
  const files = [
    ...(await readdir('examples')).map((name) => join('examples', name)),
    ...(await readdir('test/fixtures')).map((name) => join('test/fixtures', name)),
  ].filter((file) => /\.(ya?ml|json)$/.test(file));
  t.true(files.length >= 3);
  for (const file of files) t.deepEqual(unknownFieldWarnings(buildClusterState(await readManifests([file])).warnings), [], file);
});

test('- reads standard input, YAML or JSON, and names it <stdin> in errors', async (t) => {
  const yaml = 'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.20, ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n';
  t.deepEqual((await readManifests(['-'], Readable.from([yaml]))).map((object) => (object as { kind: string }).kind), ['Service', 'Node']);
  const json = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [serviceObject()] });
  t.like(await readManifests(['-'], Readable.from([Buffer.from(json.slice(0, 10)), Buffer.from(json.slice(10))])), [{ kind: 'List' }]);
  await t.throwsAsync(readManifests(['-'], Readable.from(['kind: [Service\n'])), { instanceOf: ManifestError, message: /^<stdin>: / });
  await t.throwsAsync(readManifests(['-'], Readable.from(['{"kind": "Service"'])), { instanceOf: ManifestError, message: /^<stdin>: / });
  await t.throwsAsync(readManifests(['-', '-'], Readable.from([yaml])), { instanceOf: ManifestError, message: /^<stdin>: can be read only once/ });
});
