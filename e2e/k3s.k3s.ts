// npm run test:k3s — the informer source against a real API server (K3s in a container, through
// testcontainers), with the same checks as the list/watch server of test/kubernetes-source.test.ts.
// Needs Docker and the rancher/k3s image; without them the test is reported as skipped, with the reason.
import { CoreV1Api, DiscoveryV1Api, KubeConfig } from '@kubernetes/client-node';
import { K3sContainer, type StartedK3sContainer } from '@testcontainers/k3s';
import test from 'ava';
import { pino } from 'pino';
import { getContainerRuntimeClient } from 'testcontainers';
import { buildClusterState } from '../controlplane/model/cluster-state.js';
import { KubernetesSource } from '../controlplane/sources/kubernetes.js';

const IMAGE = 'rancher/k3s:v1.31.4-k3s1';

let unavailable: string | undefined;
try {
  await getContainerRuntimeClient();
} catch (error) {
  unavailable = (error as Error).message.split('\n')[0];
}

const title = 'the informer source lists, watches and follows changes on a real K3s API server';
if (unavailable) {
  console.error(`test:k3s skipped: no container runtime (${unavailable}). It needs Docker and the image ${IMAGE}.`);
  test.skip(`${title} (skipped: no container runtime)`, () => {});
} else {
  test(title, async (t) => {
    t.timeout(300_000);
    const container: StartedK3sContainer = await new K3sContainer(IMAGE).start();
    t.teardown(() => container.stop());
    const config = new KubeConfig();
    config.loadFromString(container.getKubeConfig());
    const core = config.makeApiClient(CoreV1Api);
    const discovery = config.makeApiClient(DiscoveryV1Api);
    const nodeName = (await core.listNode()).items[0]!.metadata!.name!;
    let changes = 0;
    const source = new KubernetesSource(config, nodeName, pino({ level: 'silent' }));
    t.teardown(() => source.stop());
    await source.start(() => changes++);
    const state = () => buildClusterState(source.objects()).state;
    t.deepEqual(state().nodes.map((node) => node.name), [nodeName]);
    t.true(state().services.some((service) => service.name === 'kubernetes'));

    const eventually = async (condition: () => boolean, what: string) => {
      for (let i = 0; i < 300 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 100));
      t.true(condition(), what);
    };
    await core.createNamespacedService({ namespace: 'default', body: { metadata: { name: 'web' }, spec: { ports: [{ name: 'http', port: 80 }] } } });
    await eventually(() => state().services.some((service) => service.name === 'web'), 'an added Service is seen');
    await discovery.createNamespacedEndpointSlice({
      namespace: 'default',
      body: {
        metadata: { name: 'web-1', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4',
        endpoints: [{ addresses: ['10.42.0.99'], conditions: { ready: true }, nodeName }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      },
    });
    await eventually(() => state().endpointSlices.some((slice) => slice.name === 'web-1'), 'an added EndpointSlice is seen');
    await core.deleteNamespacedService({ name: 'web', namespace: 'default' });
    await eventually(() => !state().services.some((service) => service.name === 'web'), 'a deleted Service disappears');
    t.true(changes >= 3);
  });
}
