import test from 'ava';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { endpointKey } from '../rules/names.js';
import { buildClusterState } from '../controlplane/model/cluster-state.js';
import { applyRules } from '../dataplane/dataplane.js';
import { render } from '../dataplane/render.js';
import { Cluster } from '../e2e/cluster.js';
import { runnerIn } from './helpers/netns-runner.js';
import { testConfig } from './helpers/objects.js';
import { BACKEND_NAMES } from '../dataplane/backend-names.js';

// Weights 1:3 on two endpoints, 2,000 new connections: the split must pass a chi-square test.
// 23.93 is the critical value for one degree of freedom at 1e-6 (4.89², the two-sided normal
// quantile squared): a correct split fails once in a million runs. A wrong one is still caught: an
// even split (weights ignored) gives a chi-square of 667, 1:2 instead of 1:3 one of 74.
const CONNECTIONS = 2000;
const CRITICAL = 23.93;

for (const backend of BACKEND_NAMES) {
  test(`kernel: ${backend} weights 1:3 split ${CONNECTIONS} connections 1:3 (chi-square)`, async (t) => {
    const cluster = await Cluster.create({ nodes: 1, pods: [{ name: 'web-1', node: 'node-a', ports: [8080] }, { name: 'web-2', node: 'node-a', ports: [8080] }, { name: 'client', node: 'node-a' }] });
    t.teardown(() => cluster.destroy());
    const [light, heavy] = [cluster.pods.get('web-1')!, cluster.pods.get('web-2')!];
    const objects = [
      ...cluster.nodeObjects(),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      ...cluster.endpointSlices('web', ['web-1', 'web-2'], [{ name: 'http', port: 8080 }]),
    ];
    const weights = new Map([[endpointKey('tcp', light.ipv4, 8080), 1], [endpointKey('tcp', heavy.ipv4, 8080), 3]]);
    const rules = computeNodeRules(buildClusterState(objects).state, 'node-a', testConfig, weights);
    const node = cluster.nodes.get('node-a')!;
    await applyRules(runnerIn(node.ns.name), render(rules, backend, cluster.backendOptions(node)));
    const results = await cluster.probe(cluster.pods.get('client')!, { proto: 'tcp', host: '10.96.0.20', port: 80, count: CONNECTIONS });
    const observed = [light, heavy].map((pod) => results.filter((result) => result.server === pod.ipv4).length);
    t.is(observed[0]! + observed[1]!, CONNECTIONS, 'every connection was answered');
    const expected = [CONNECTIONS / 4, (CONNECTIONS * 3) / 4];
    const chiSquare = observed.reduce((sum, count, i) => sum + (count - expected[i]!) ** 2 / expected[i]!, 0);
    t.log(`observed ${observed.join(':')}, expected ${expected.join(':')}, chi-square ${chiSquare.toFixed(2)}`);
    t.true(chiSquare < CRITICAL, `chi-square ${chiSquare.toFixed(2)} >= ${CRITICAL}`);
  });
}
