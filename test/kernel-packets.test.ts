import test from 'ava';
import { Cluster } from '../e2e/cluster.js';
import type { ProbeResult } from '../e2e/driver.js';
import { BACKEND_NAMES } from '../dataplane/backend-names.js';

// One node, three endpoint pods, a client pod and an external client: real packets through the rules.
const WEB = { clusterIPs: ['10.96.0.20', 'fd00:96::14'], http: 80, udp: 53, nodePortTCP: 30080, nodePortUDP: 30053 };

function manifests(cluster: Cluster): object[] {
  return [
    {
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' },
      spec: {
        type: 'NodePort', clusterIP: WEB.clusterIPs[0], clusterIPs: WEB.clusterIPs, ipFamilies: ['IPv4', 'IPv6'],
        ports: [
          { name: 'http', port: WEB.http, protocol: 'TCP', targetPort: 8080, nodePort: WEB.nodePortTCP },
          { name: 'dns', port: WEB.udp, protocol: 'UDP', targetPort: 8080, nodePort: WEB.nodePortUDP },
        ],
      },
    },
    ...cluster.endpointSlices('web', ['web-1', 'web-2', 'web-3'], [{ name: 'http', port: 8080 }, { name: 'dns', port: 8080, protocol: 'UDP' }]),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'empty', namespace: 'default' }, spec: { clusterIP: '10.96.0.30', ports: [{ name: 'http', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' }] } },
    { apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.96.0.0/16', 'fd00:96::/112'] } },
  ];
}

const servers = (results: ProbeResult[]) => [...new Set(results.map((result) => result.server!))].sort();

for (const backend of BACKEND_NAMES) {
  test(`kernel: ${backend} rules carry real TCP and UDP traffic to the right endpoints with the right source`, async (t) => {
    const cluster = await Cluster.create({
      nodes: 1, externalClients: 1,
      pods: [{ name: 'web-1', node: 'node-a', ports: [8080] }, { name: 'web-2', node: 'node-a', ports: [8080] }, { name: 'web-3', node: 'node-a', ports: [8080] }, { name: 'client', node: 'node-a' }],
    });
    t.teardown(() => cluster.destroy());
    await cluster.applyWithCli(manifests(cluster), backend);
    const node = cluster.nodes.get('node-a')!;
    const client = cluster.pods.get('client')!;
    const external = cluster.externals[0]!;
    const endpoints = new Set(['web-1', 'web-2', 'web-3'].map((name) => cluster.pods.get(name)!.ipv4));

    for (const proto of ['tcp', 'udp'] as const) {
      // GIVEN a pod client WHEN it uses the cluster IP THEN every endpoint answers and sees the pod's own address.
      const fromPod = await cluster.probe(client, { proto, host: WEB.clusterIPs[0]!, port: proto === 'tcp' ? WEB.http : WEB.udp, count: 30 });
      t.true(fromPod.every((result) => result.ok), `${proto} from pod: ${JSON.stringify(fromPod.filter((r) => !r.ok))}`);
      t.deepEqual(servers(fromPod), [...endpoints].sort(), `${proto}: all three endpoints receive traffic`);
      t.true(fromPod.every((result) => result.peer === client.ipv4), `${proto}: pod-to-pod traffic is not masqueraded`);

      // GIVEN an external client WHEN it uses the node port THEN an endpoint answers and sees the node (SNAT).
      const fromOutside = await cluster.probe(external, { proto, host: node.ipv4, port: proto === 'tcp' ? WEB.nodePortTCP : WEB.nodePortUDP, count: 10 });
      t.true(fromOutside.every((result) => result.ok && endpoints.has(result.server!)), `${proto} node port: ${JSON.stringify(fromOutside)}`);
      t.true(fromOutside.every((result) => result.peer !== external.ipv4), `${proto}: node-port traffic under the Cluster policy is masqueraded`);

      // GIVEN a Service without endpoints WHEN a client connects THEN it is refused at once, not left to time out.
      const refused = await cluster.probe(client, { proto, host: '10.96.0.30', port: proto === 'tcp' ? 80 : 53, count: 3, timeoutMs: 3000 });
      t.true(refused.every((result) => result.error === 'ECONNREFUSED' && result.ms < 1000), `${proto} empty service: ${JSON.stringify(refused)}`);
    }

    // ServiceCIDR semantics. A cluster IP on a port it does not serve is refused at once. An unallocated
    // address of the service CIDR is dropped: without the rule it would reach the node's gateway,
    // where this test puts a server on that very address, so a dropped connection can only be the rule.
    // (From another pod: the kernel rate-limits ICMP errors per destination, and client had its share.)
    const unserved = await cluster.probe(cluster.pods.get('web-2')!, { proto: 'tcp', host: WEB.clusterIPs[0]!, port: 81, count: 1, timeoutMs: 3000 });
    t.true(unserved[0]!.error === 'ECONNREFUSED' && unserved[0]!.ms < 1000, JSON.stringify(unserved));
    await external.ns.run(['ip', 'address', 'add', '10.96.0.99/32', 'dev', 'lo']);
    await cluster.startServer(external, [80]);
    t.true((await cluster.probe(external, { proto: 'tcp', host: '10.96.0.99', port: 80 }))[0]!.ok, 'the gateway does answer on that address');
    const unallocated = await cluster.probe(client, { proto: 'tcp', host: '10.96.0.99', port: 80, count: 1, timeoutMs: 1500 });
    t.is(unallocated[0]!.error, 'ETIMEDOUT', 'an unallocated service address is dropped');

    // The node itself reaches the cluster IP, and the IPv6 cluster IP works alongside IPv4.
    const fromNode = await cluster.probe(node, { proto: 'tcp', host: WEB.clusterIPs[0]!, port: WEB.http, count: 5 });
    t.true(fromNode.every((result) => result.ok && endpoints.has(result.server!)), JSON.stringify(fromNode));
    const ipv6 = await cluster.probe(client, { proto: 'tcp', host: WEB.clusterIPs[1]!, port: WEB.http, count: 10 });
    t.true(ipv6.every((result) => result.ok && result.peer === client.ipv6), JSON.stringify(ipv6));
  });
}
