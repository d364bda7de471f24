import test from 'ava';
import { execa } from 'execa';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { companionScript } from '../dataplane/ebpf/companion.js';
import { planPackets } from '../dataplane/ebpf/packet-plan.js';
import { groupName, planSockets } from '../dataplane/ebpf/plan.js';
import { clusterState, nodeObject, serviceObject, sliceObject, testConfig } from './helpers/objects.js';

// node-a of the address plan: 192.168.56.11, its pods 10.244.1.0/24; node-b's pods 10.244.2.0/24.
const NODE_ADDRESSES = ['192.168.56.11', '10.0.0.11', 'fd00:56::11'];

function planFor(objects: unknown[], config = testConfig) {
  const rules = computeNodeRules(clusterState(nodeObject('node-a'), nodeObject('node-b'), ...objects), 'node-a', config);
  const sockets = planSockets(rules);
  const packets = planPackets(rules, sockets, NODE_ADDRESSES);
  const frontend = (ip: string, port: number, protocol = 'tcp') => packets.frontends.get(`${ip}|${port}|${protocol}`)?.[1];
  const group = (service: string, which: 'cluster' | 'local') => {
    const port = rules.families.flatMap((family) => family.servicePorts).find((candidate) => candidate.id.startsWith(`default/${service}:`));
    return sockets.ids.get(groupName(port!, which));
  };
  return { packets, frontend, group };
}

const endpoints = [{ ip: '10.244.1.5', node: 'node-a' as const }, { ip: '10.244.2.5', node: 'node-b' as const }];

test('packet plan: a Cluster-policy node port and external IP masquerade to every endpoint; the cluster IP masquerades only off-cluster sources', (t) => {
  const { packets, frontend, group } = planFor([
    serviceObject({ name: 'web', type: 'NodePort', externalIPs: ['203.0.113.7'], ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
    sliceObject('web', endpoints),
  ]);
  const everyEndpoint = group('web', 'cluster');
  t.truthy(everyEndpoint);
  t.deepEqual(frontend('0.0.0.0', 30080), { group: everyEndpoint, verdict: 'serve', masquerade: 'always', ranged: false, localSourceGroup: 0, affinitySeconds: 0 });
  t.deepEqual(frontend('203.0.113.7', 80), { group: everyEndpoint, verdict: 'serve', masquerade: 'always', ranged: false, localSourceGroup: 0, affinitySeconds: 0 });
  t.deepEqual(frontend('10.96.0.20', 80), { group: everyEndpoint, verdict: 'serve', masquerade: 'off-cluster', ranged: false, localSourceGroup: 0, affinitySeconds: 0 });
  // kube-proxy's "primary" node-port addresses: the Node's InternalIP of the family.
  t.deepEqual(packets.nodeAddresses, ['192.168.56.11', 'fd00:56::11']);
  t.deepEqual(packets.localSources, ['10.244.0.0/16', 'fd00:244::/56']);
  t.deepEqual([...packets.masqueradeSources], [['IPv4', '192.168.56.11'], ['IPv6', 'fd00:56::11']]);
});

test('packet plan: a Local-policy load balancer keeps the client, uses this node\'s endpoints, and lets pods use every endpoint; with none here it drops outsiders only', (t) => {
  const service = (name: string, ip: string) => serviceObject({ name, type: 'LoadBalancer', clusterIPs: [ip], externalTrafficPolicy: 'Local', allocateLoadBalancerNodePorts: false, ports: [{ name: 'http', port: 80 }] }, { loadBalancer: { ingress: [{ ip: ip.replace('10.96', '198.51') }] } });
  const { frontend, group } = planFor([
    service('here', '10.96.0.21'), sliceObject('here', endpoints),
    service('elsewhere', '10.96.0.22'), sliceObject('elsewhere', [endpoints[1]!]),
  ]);
  t.deepEqual(frontend('198.51.0.21', 80), { group: group('here', 'local'), verdict: 'serve', masquerade: 'never', ranged: false, localSourceGroup: group('here', 'cluster'), affinitySeconds: 0 });
  t.deepEqual(frontend('198.51.0.22', 80), { group: 0, verdict: 'drop', masquerade: 'never', ranged: false, localSourceGroup: group('elsewhere', 'cluster'), affinitySeconds: 0 });
});

test('packet plan: no endpoints reject, a source-ranged load-balancer IP gets its ranges, node-port CIDRs pick the node addresses', (t) => {
  const { packets, frontend } = planFor([
    serviceObject({ name: 'empty', type: 'NodePort', clusterIPs: ['10.96.0.23'], ports: [{ name: 'http', port: 80, nodePort: 30081 }] }),
    serviceObject({ name: 'ranged', type: 'LoadBalancer', clusterIPs: ['10.96.0.24'], loadBalancerSourceRanges: ['192.0.2.0/24'], ports: [{ name: 'http', port: 80, nodePort: 30082 }] },
      { loadBalancer: { ingress: [{ ip: '198.51.0.24' }] } }),
    sliceObject('ranged', endpoints),
  ], { ...testConfig, nodePortAddresses: { kind: 'cidrs', cidrs: ['10.0.0.0/8'] } });
  t.deepEqual(frontend('10.96.0.23', 80), { group: 0, verdict: 'reject', masquerade: 'never', ranged: false, localSourceGroup: 0, affinitySeconds: 0 });
  t.deepEqual(frontend('0.0.0.0', 30081), { group: 0, verdict: 'reject', masquerade: 'never', ranged: false, localSourceGroup: 0, affinitySeconds: 0 });
  t.like(frontend('198.51.0.24', 80), { verdict: 'serve', ranged: true });
  t.deepEqual([...packets.sourceRanges.values()], [{ frontend: { ip: '198.51.0.24', port: 80, protocol: 'tcp' }, cidr: '192.0.2.0/24' }]);
  t.false(frontend('10.96.0.24', 80)!.ranged, 'the cluster IP is not ranged');
  t.truthy(frontend('0.0.0.0', 30082), 'its node port is served');
  t.deepEqual(packets.nodeAddresses, ['10.0.0.11']);
});

test('kernel: companion table: the addresses and node ports of Services without endpoints go to reject, served ones do not, and nft accepts the script', async (t) => {
  const rules = computeNodeRules(clusterState(nodeObject('node-a'),
    serviceObject({ name: 'empty', type: 'NodePort', clusterIPs: ['10.96.0.23', 'fd00:96::23'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack', externalIPs: ['203.0.113.9'], ports: [{ name: 'http', port: 80, nodePort: 30081 }] }),
    serviceObject({ name: 'web', clusterIPs: ['10.96.0.20'] }), sliceObject('web', endpoints)), 'node-a', testConfig);
  const script = companionScript(rules);
  t.regex(script, /map no-endpoint-services-v4 \{\n\t\ttype ipv4_addr \. inet_proto \. inet_service : verdict\n\t\telements = \{\n\t\t\t10\.96\.0\.23 \. tcp \. 80 : goto reject-chain,\n\t\t\t203\.0\.113\.9 \. tcp \. 80 : goto reject-chain,\n\t\t\}/);
  t.regex(script, /fd00:96::23 \. tcp \. 80 : goto reject-chain/);
  t.regex(script, /map no-endpoint-nodeports \{\n\t\ttype inet_proto \. inet_service : verdict\n\t\telements = \{\n\t\t\ttcp \. 30081 : goto reject-chain,/);
  t.notRegex(script, /10\.96\.0\.20 \. /, 'a served Service is not refused (it is in cluster-ips only, for the ports it does not serve)');
  t.regex(script, /chain nat-prerouting \{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tct state new counter/);
  const checked = await execa('unshare', ['--net', '--', 'nft', '-c', '-f', '-'], { input: script, reject: false, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  t.is(checked.exitCode, 0, String(checked.stderr));
});
