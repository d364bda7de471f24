import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { pino } from 'pino';
import { buildClusterState } from '../controlplane/model/cluster-state.js';
import { KubernetesSource, loadKubeConfig } from '../controlplane/sources/kubernetes.js';
import { FakeApi } from './helpers/fake-api.js';
import { nodeObject, serviceObject, sliceObject } from './helpers/objects.js';

const SERVICES = '/api/v1/services';
const SLICES = '/apis/discovery.k8s.io/v1/endpointslices';
const NODES = '/api/v1/nodes';

async function fakeCluster(t: import('ava').ExecutionContext, options: { serviceCIDRs?: boolean } = {}) {
  const api = new FakeApi({
    [SERVICES]: { kind: 'Service', apiVersion: 'v1' },
    [SLICES]: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' },
    [NODES]: { kind: 'Node', apiVersion: 'v1' },
    ...(options.serviceCIDRs ? { '/apis/networking.k8s.io/v1/servicecidrs': { kind: 'ServiceCIDR', apiVersion: 'networking.k8s.io/v1' } } : {}),
  });
  await api.start();
  api.put(SERVICES, serviceObject());
  api.put(SLICES, sliceObject('web', [{ ip: '10.244.1.9', node: 'node-a' }]));
  api.put(NODES, nodeObject('node-a'));
  api.put(NODES, nodeObject('node-b'));
  let changes = 0;
  const source = new KubernetesSource(api.kubeConfig(), 'node-a', pino({ level: 'silent' }), 50);
  t.teardown(async () => {
    await source.stop();
    await api.stop();
  });
  await source.start(() => changes++);
  return { api, source, changes: () => changes };
}

async function eventually(condition: () => boolean, what: string): Promise<void> {
  // A bound for a hang only: a busy machine may take many seconds for a sync.
  for (let i = 0; i < 1200; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting until ${what}`);
}

const serviceNames = (source: KubernetesSource) => buildClusterState(source.objects()).state.services.map((service) => service.name).sort();

test('start resolves with a complete first view: every kind listed, only this node, valid for the model', async (t) => {
  const { source, api } = await fakeCluster(t);
  const { state, errors } = buildClusterState(source.objects());
  t.deepEqual(errors, []);
  t.deepEqual(state.services.map((service) => service.name), ['web']);
  t.deepEqual(state.endpointSlices.map((slice) => slice.name), ['web-ipv4']);
  t.deepEqual(state.nodes.map((node) => node.name), ['node-a'], 'the Node informer selects this node only');
  t.true(api.requests.some((request) => request.path === NODES && !request.watch));
});

test('Services and EndpointSlices are listed and watched without other proxies\' and headless ones, as kube-proxy selects them', async (t) => {
  const { api } = await fakeCluster(t);
  await eventually(() => api.watchers(SERVICES) === 1 && api.watchers(SLICES) === 1, 'the watches are open');
  for (const path of [SERVICES, SLICES]) {
    const selectors = new Set(api.requests.filter((request) => request.path === path).map((request) => request.labelSelector));
    t.deepEqual([...selectors], ['!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless'], path);
  }
});

test('loadKubeConfig: --master replaces the kubeconfig\'s server, and alone is that server', (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'ferry-kubeconfig-'));
  t.teardown(() => rmSync(directory, { recursive: true, force: true }));
  const path = join(directory, 'kubeconfig');
  writeFileSync(path, 'apiVersion: v1\nkind: Config\nclusters:\n- cluster: {server: "https://10.0.0.1:6443"}\n  name: c\ncontexts:\n- context: {cluster: c, user: u}\n  name: x\ncurrent-context: x\nusers:\n- name: u\n  user: {token: abc}\n');
  t.is(loadKubeConfig(path).getCurrentCluster()?.server, 'https://10.0.0.1:6443');
  const overridden = loadKubeConfig(path, 'https://192.0.2.10:6443');
  t.is(overridden.getCurrentCluster()?.server, 'https://192.0.2.10:6443');
  t.is(overridden.getCurrentUser()?.token, 'abc', 'the credentials stay');
  t.is(loadKubeConfig(undefined, 'https://192.0.2.11:6443').getCurrentCluster()?.server, 'https://192.0.2.11:6443');
});

test('a missing ServiceCIDR API does not hold up the start', async (t) => {
  const { api } = await fakeCluster(t);
  t.true(api.requests.some((request) => request.path === '/apis/networking.k8s.io/v1/servicecidrs'));
});

test('ADDED, MODIFIED and DELETED events change the view and report a change; BOOKMARK moves the resourceVersion only', async (t) => {
  const { api, source, changes } = await fakeCluster(t);
  await eventually(() => api.watchers(SERVICES) === 1, 'the service watch is open');
  const before = changes();
  api.put(SERVICES, serviceObject({ name: 'api', clusterIPs: ['10.96.0.30'] }));
  await eventually(() => serviceNames(source).includes('api'), 'the added service is seen');
  api.put(SERVICES, serviceObject({ name: 'api', clusterIPs: ['10.96.0.30'], ports: [{ name: 'http', port: 81 }] }), 'MODIFIED');
  await eventually(() => buildClusterState(source.objects()).state.services.find((s) => s.name === 'api')?.ports[0]?.port === 81, 'the modification is seen');
  api.remove(SERVICES, serviceObject({ name: 'api' }));
  await eventually(() => !serviceNames(source).includes('api'), 'the deletion is seen');
  t.true(changes() - before >= 3);
  api.bookmark(SERVICES);
  api.drop(SERVICES);
  await eventually(() => api.watchers(SERVICES) === 1, 'the watch is reopened');
  const resumed = api.requests.filter((request) => request.path === SERVICES && request.watch).at(-1)!;
  t.not(resumed.resourceVersion, '', 'the watch resumes from the bookmark, without a new list');
  t.is(api.requests.filter((request) => request.path === SERVICES && !request.watch).length, 1);
});

test('410 Gone makes the source list again, and objects deleted meanwhile disappear', async (t) => {
  const { api, source } = await fakeCluster(t);
  await eventually(() => api.watchers(SERVICES) === 1, 'the service watch is open');
  api.put(SERVICES, serviceObject({ name: 'later', clusterIPs: ['10.96.0.40'] }));
  await eventually(() => serviceNames(source).includes('later'), 'the new service is seen');
  api.remove(SERVICES, serviceObject({ name: 'later' }), { silently: true });
  api.gone(SERVICES);
  await eventually(() => api.requests.filter((request) => request.path === SERVICES && !request.watch).length === 2, 'the services are listed again');
  await eventually(() => !serviceNames(source).includes('later'), 'the re-list drops the deleted service');
  t.deepEqual(serviceNames(source), ['web']);
});

test('while the API is away the last view stays, and it catches up when the API returns', async (t) => {
  const { api, source } = await fakeCluster(t);
  await eventually(() => api.watchers(SERVICES) === 1, 'the service watch is open');
  api.unavailable = true;
  api.drop(SERVICES);
  api.drop(SLICES);
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.deepEqual(serviceNames(source), ['web'], 'no flush on disconnect');
  t.is(buildClusterState(source.objects()).state.endpointSlices.length, 1);
  api.put(SERVICES, serviceObject({ name: 'back', clusterIPs: ['10.96.0.50'] }));
  api.unavailable = false;
  await eventually(() => serviceNames(source).includes('back'), 'the source recovers and sees what changed meanwhile');
  t.pass();
});

test('managedFields is dropped from every object as it arrives, listed or watched: the informer\'s cache and the store hold none', async (t) => {
  const managed = (object: ReturnType<typeof serviceObject>) => ({
    ...object, metadata: { ...object.metadata, managedFields: [{ manager: 'kubectl', operation: 'Apply', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': { 'f:ports': {} } } }] },
  });
  const api = new FakeApi({
    [SERVICES]: { kind: 'Service', apiVersion: 'v1' },
    [SLICES]: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' },
    [NODES]: { kind: 'Node', apiVersion: 'v1' },
  });
  await api.start();
  api.put(SERVICES, managed(serviceObject()));
  api.put(NODES, nodeObject('node-a'));
  const told: unknown[] = [];
  const source = new KubernetesSource(api.kubeConfig(), 'node-a', pino({ level: 'silent' }), 50);
  t.teardown(async () => {
    await source.stop();
    await api.stop();
  });
  await source.start((change) => change && told.push(change.object));
  await eventually(() => api.watchers(SERVICES) === 1, 'the service watch is open');
  api.put(SERVICES, managed(serviceObject({ name: 'api', clusterIPs: ['10.96.0.30'] })));
  await eventually(() => serviceNames(source).includes('api'), 'the watched service is seen');
  const hasManaged = (object: unknown) => JSON.stringify(object).includes('managedFields');
  t.is(told.filter((object) => JSON.stringify(object).includes('"Service"')).length, 2, 'both Services were told');
  t.false(told.some(hasManaged), 'none told with managedFields');
  t.false(source.objects().some(hasManaged), 'none cached with managedFields');
});
