import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { packageRoot } from '../controlplane/package-root.js';
import { writeGroup } from './helpers/ebpf-groups.js';
import { MAPS, type FrontendKey, type PacketFrontend } from '../dataplane/ebpf/layout.js';
import { MapWriter, type OpenMap } from '../dataplane/ebpf/map-writer.js';
import { companionScript } from '../dataplane/ebpf/companion.js';
import { applyPacketPlan, planPackets, type PacketMaps } from '../dataplane/ebpf/packet-plan.js';
import { applySocketPlan, planSockets, type SocketMaps } from '../dataplane/ebpf/plan.js';
import { attachNewDevices } from '../dataplane/ebpf/devices.js';
import {
  attachPacketProgram, forgetEarlierPacketPrograms, loadPacketProgram, loadSocketPrograms, type PacketProgram, type SocketPrograms,
} from '../dataplane/ebpf/programs.js';
import { execaRunner, runChecked, type Runner } from '../dataplane/runner.js';
import { Lab, type Namespace } from '../e2e/netns.js';
import { bpfWorkspace, leftovers } from './helpers/bpf-workspace.js';
import { ECHO_CLIENT, type Attempt } from './helpers/echo-client.js';
import { clusterState, nodeObject, serviceObject, sliceObject, testConfig } from './helpers/objects.js';
import { binomialCdf } from './helpers/statistics.js';

// The tc packet program in the real kernel, with real packets: a client namespace reaches Services
// through a node namespace (the program on the node's interface towards the client, the companion
// nftables table), whose endpoints are two pod namespaces on a bridge of the node. Each test makes its own
// namespaces, and a cgroup (for the socket programs' probe; nothing is attached to it) and bpffs (bpfWorkspace).
const CACHE = join(tmpdir(), 'ferry-test-cache');
const ECHO_SERVER = join(packageRoot(), 'dist', 'e2e', 'echo-server.js');

const CLIENT = { v4: '10.0.1.2', v6: 'fd00:1::2' };
const NODE = { v4: '10.0.1.1', v6: 'fd00:1::1', podSide: { v4: '10.0.2.1', v6: 'fd00:2::1' } };
const SERVICE = { v4: '10.96.0.10', v6: 'fd00:96::10', port: 80, nodePort: 30080 };
const ENDPOINTS = { v4: ['10.0.2.2', '10.0.2.3'], v6: ['fd00:2::2', 'fd00:2::3'] };
const ENDPOINT_PORT = 8080;
const LOAD_BALANCER = '198.51.100.9';

interface World {
  client: Namespace;
  node: Namespace;
  writer: MapWriter;
  frontends: OpenMap<FrontendKey, PacketFrontend>;
  groups: Parameters<typeof writeGroup>[1];
  socketMaps: SocketMaps;
  packetMaps: PacketMaps;
  program: PacketProgram;
  sockets: SocketPrograms;
  nodeRunner: Runner;
  connect(proto: 'tcp' | 'udp', host: string, port: number, count: number): Promise<Attempt[]>;
}

const createdNamespaces: string[] = [];

async function world(t: ExecutionContext): Promise<World> {
  const lab = new Lab();
  const { cgroup, pinDir } = await bpfWorkspace(t);
  const made: { writer?: MapWriter } = {};
  // After the workspace's, so it runs first (ava runs teardowns last in, first out); deleting the
  // namespaces takes the tc filters with the interfaces.
  t.teardown(async () => {
    await made.writer?.close().catch(() => undefined);
    await lab.destroy();
  });

  const [client, node] = [await lab.namespace('client'), await lab.namespace('node')];
  const pods = [await lab.namespace('pod-a'), await lab.namespace('pod-b')];
  createdNamespaces.push(...pods.map((pod) => pod.name));
  createdNamespaces.push(client.name, node.name);
  // One address per pod: a UDP server bound to the wildcard answers from its primary address, and the
  // reply must come from the endpoint that was chosen for conntrack to match it.
  await lab.link(client, 'c0', node, 'n0');
  await node.run(['ip', 'link', 'add', 'br0', 'type', 'bridge']);
  for (const [index, pod] of pods.entries()) {
    await lab.link(node, `n${index + 1}`, pod, 'p0');
    await node.run(['ip', 'link', 'set', `n${index + 1}`, 'master', 'br0']);
    await pod.run(['ip', 'address', 'add', `${ENDPOINTS.v4[index]}/24`, 'dev', 'p0']);
    await pod.run(['ip', 'address', 'add', `${ENDPOINTS.v6[index]}/64`, 'dev', 'p0', 'nodad']);
    await pod.run(['ip', 'route', 'add', 'default', 'via', NODE.podSide.v4]);
    await pod.run(['ip', '-6', 'route', 'add', 'default', 'via', NODE.podSide.v6]);
  }
  await node.run(['ip', 'link', 'set', 'br0', 'up']);
  for (const [ns, device, addresses] of [
    [client, 'c0', [`${CLIENT.v4}/24`, `${CLIENT.v6}/64`]], [node, 'n0', [`${NODE.v4}/24`, `${NODE.v6}/64`]],
    [node, 'br0', [`${NODE.podSide.v4}/24`, `${NODE.podSide.v6}/64`]],
  ] as const) {
    for (const address of addresses) await ns.run(['ip', 'address', 'add', address, 'dev', device, ...(address.includes(':') ? ['nodad'] : [])]);
  }
  // The client knows only the way to Services (and the node); the pods send everything to the node.
  await client.run(['ip', 'route', 'add', '10.96.0.0/16', 'via', NODE.v4]);
  await client.run(['ip', 'route', 'add', '198.51.100.0/24', 'via', NODE.v4]);
  await client.run(['ip', '-6', 'route', 'add', 'fd00:96::/112', 'via', NODE.v6]);
  await node.run(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  // As a real node has one: a packet to an untranslated cluster IP is then forwarded, and the forward
  // hook sees it. Here it leads back to the client, so no ICMP redirects: they would use up the per-host
  // ICMP rate limit that the companion table's reject needs too.
  await node.run(['sysctl', '-q', '-w', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.n0.send_redirects=0']);
  await node.run(['ip', 'route', 'add', 'default', 'via', CLIENT.v4]);
  // The companion table of a node without Services: conntrack and NAT on (see companion.ts).
  await node.run(['nft', '-f', '-'], companionScript({ node: 'node-a', masqueradeMark: '0x4000', families: [], healthChecks: [] }));

  const sockets = await loadSocketPrograms({ pinDir, cgroup, cacheDir: CACHE });
  const nodeRunner = { run: (command: string, args: string[], input?: string) => node.exec([command, ...args], input) };
  const program = await loadPacketProgram(sockets, { cacheDir: CACHE });
  await attachPacketProgram(program, 'n0', nodeRunner);
  const writer = await MapWriter.start({ cacheDir: CACHE });
  made.writer = writer;
  const groups = { groups: await writer.open(MAPS.groups, sockets.maps.groups), slots: await writer.open(MAPS.slots, sockets.maps.slots) };
  const packetMaps: PacketMaps = {
    frontends: await writer.open(MAPS.packet_frontends, program.maps.packet_frontends),
    nodeAddresses: await writer.open(MAPS.node_addresses, program.maps.node_addresses),
    masqueradeSources: await writer.open(MAPS.masquerade_sources, program.maps.masquerade_sources),
    localSources: await writer.open(MAPS.local_sources, program.maps.local_sources),
    sourceRanges: await writer.open(MAPS.source_ranges, program.maps.source_ranges),
  };
  const socketMaps: SocketMaps = { frontends: await writer.open(MAPS.frontends, sockets.maps.frontends), ...groups };
  await writer.update(packetMaps.nodeAddresses, [[NODE.v4, true], [NODE.v6, true]]);
  await writer.update(packetMaps.masqueradeSources, [['IPv4', NODE.podSide.v4], ['IPv6', NODE.podSide.v6]]);

  if (!existsSync(ECHO_SERVER)) throw new Error(`${ECHO_SERVER} is missing: npm run build first`);
  for (const pod of pods) {
    const server = pod.stream([process.execPath, ECHO_SERVER, '--port', String(ENDPOINT_PORT)]);
    if ((await server.waitFor((line) => line.includes('ready'), { within: 20_000 })) === undefined) throw new Error(`the echo server in ${pod.name} did not start`);
  }

  return {
    client, node, writer, frontends: packetMaps.frontends, groups, socketMaps, packetMaps, program, sockets, nodeRunner,
    async connect(proto, host, port, count) {
      const result = await execa('ip', ['netns', 'exec', client.name, process.execPath, '--input-type=module', '-e', ECHO_CLIENT, proto, host, String(port), String(count)], { reject: false });
      if (result.exitCode !== 0) throw new Error(`client exited ${result.exitCode}: ${result.stderr}`);
      return String(result.stdout).trim().split('\n').map((line) => JSON.parse(line) as Attempt);
    },
  };
}

/** The client address the endpoint saw on one TCP connection (masquerade shows as the node's). */
async function seenBy(w: World, host: string, port: number): Promise<string | undefined> {
  const [attempt] = await w.connect('tcp', host, port, 1);
  if (!attempt?.ok) throw new Error(`no connection to ${host}:${port}: ${JSON.stringify(attempt)}`);
  return attempt.seenAs;
}

const failures = (attempts: Attempt[]) => JSON.stringify(attempts.filter((attempt) => !attempt.ok).slice(0, 3));

test('kernel: ebpf tc ingress: new TCP flows to a cluster IP are DNATed by a conntrack entry the program inserts, weighted, replies come from the Service (IPv4 and IPv6)', async (t) => {
  const w = await world(t);
  for (const family of ['v4', 'v6'] as const) {
    // GIVEN a frontend for the cluster IP whose two endpoints weigh 1 and 3, without masquerade
    const id = family === 'v4' ? 1 : 2;
    await writeGroup(w.writer, w.groups, id, ENDPOINTS[family].map((ip, index) => ({ ip, port: ENDPOINT_PORT, weight: index === 0 ? 1 : 3 })), 0);
    await w.writer.update(w.frontends, [[{ ip: SERVICE[family], port: SERVICE.port, protocol: 'tcp' }, { group: id, verdict: 'serve', masquerade: 'never', ranged: false, localSourceGroup: 0, affinitySeconds: 0 }]]);
    // WHEN the client opens 200 connections to the Service
    const attempts = await w.connect('tcp', SERVICE[family], SERVICE.port, 200);
    // THEN each reaches an endpoint, which sees the client's own address, and the client sees the Service
    t.true(attempts.every((attempt) => attempt.ok), failures(attempts));
    t.true(attempts.every((attempt) => attempt.peer === SERVICE[family] && attempt.endpointPort === ENDPOINT_PORT), JSON.stringify(attempts[0]));
    t.true(attempts.every((attempt) => attempt.server !== undefined && ENDPOINTS[family].includes(attempt.server)));
    // AND the endpoints share the connections 1 : 3 (a two-sided binomial bound, 1 in 10^6 to fail by chance)
    const light = attempts.filter((attempt) => attempt.server === ENDPOINTS[family][0]).length;
    t.true(binomialCdf(light, 200, 0.25) > 5e-7 && 1 - binomialCdf(light - 1, 200, 0.25) > 5e-7, `${light} of 200 on the endpoint of weight 1`);
  }
  // AND conntrack shows the flows as the kernel's own: to the Service, answered by an endpoint
  const listing = await w.node.run(['conntrack', '-L', '-p', 'tcp', '--orig-dst', SERVICE.v4]);
  t.regex(listing, new RegExp(`dst=${SERVICE.v4.replaceAll('.', '\\.')} sport=\\d+ dport=80 src=10\\.0\\.2\\.[23] dst=${CLIENT.v4.replaceAll('.', '\\.')} sport=8080`));
});

test('kernel: ebpf tc ingress: a node port on any node address, masqueraded to the node; UDP; drop; and a port without a frontend is not touched', async (t) => {
  const w = await world(t);
  await writeGroup(w.writer, w.groups, 1, ENDPOINTS.v4.map((ip) => ({ ip, port: ENDPOINT_PORT, weight: 1 })), 0);
  await writeGroup(w.writer, w.groups, 2, ENDPOINTS.v6.map((ip) => ({ ip, port: ENDPOINT_PORT, weight: 1 })), 0);
  await w.writer.update(w.frontends, [
    // A node port has its family's zero address and applies to every node address of that family.
    [{ ip: '0.0.0.0', port: SERVICE.nodePort, protocol: 'tcp' }, { group: 1, verdict: 'serve', masquerade: 'always', ranged: false, localSourceGroup: 0, affinitySeconds: 0 }],
    [{ ip: '::', port: SERVICE.nodePort, protocol: 'tcp' }, { group: 2, verdict: 'serve', masquerade: 'always', ranged: false, localSourceGroup: 0, affinitySeconds: 0 }],
    [{ ip: SERVICE.v4, port: SERVICE.port, protocol: 'udp' }, { group: 1, verdict: 'serve', masquerade: 'never', ranged: false, localSourceGroup: 0, affinitySeconds: 0 }],
    [{ ip: SERVICE.v6, port: SERVICE.port, protocol: 'udp' }, { group: 2, verdict: 'serve', masquerade: 'never', ranged: false, localSourceGroup: 0, affinitySeconds: 0 }],
    [{ ip: SERVICE.v4, port: 81, protocol: 'tcp' }, { group: 1, verdict: 'drop', masquerade: 'never', ranged: false, localSourceGroup: 0, affinitySeconds: 0 }],
  ]);

  for (const family of ['v4', 'v6'] as const) {
    const nodePort = await w.connect('tcp', NODE[family], SERVICE.nodePort, 20);
    t.true(nodePort.every((attempt) => attempt.ok), `${family}: ${failures(nodePort)}`);
    t.true(nodePort.every((attempt) => attempt.peer === NODE[family] && attempt.peerPort === SERVICE.nodePort), 'the client talks to the node port');
    t.deepEqual([...new Set(nodePort.map((attempt) => attempt.server))].sort(), [...ENDPOINTS[family]].sort(), `${family}: both endpoints serve`);
    // The endpoint saw the node's address (masquerade), not the client's.
    t.is(await seenBy(w, NODE[family], SERVICE.nodePort), NODE.podSide[family]);
  }
  // Without masquerade the endpoint sees the client.
  await w.writer.update(w.frontends, [[{ ip: '0.0.0.0', port: SERVICE.nodePort, protocol: 'tcp' }, { group: 1, verdict: 'serve', masquerade: 'never', ranged: false, localSourceGroup: 0, affinitySeconds: 0 }]]);
  t.is(await seenBy(w, NODE.v4, SERVICE.nodePort), CLIENT.v4);

  for (const family of ['v4', 'v6'] as const) {
    const udp = await w.connect('udp', SERVICE[family], SERVICE.port, 20);
    t.true(udp.every((attempt) => attempt.ok), `${family} UDP: ${failures(udp)}`);
    t.true(udp.every((attempt) => attempt.peer === SERVICE[family] && attempt.peerPort === SERVICE.port), `${family}: replies come from the Service: ${JSON.stringify(udp.slice(0, 2))}`);
  }

  const dropped = await w.connect('tcp', SERVICE.v4, 81, 2);
  t.true(dropped.every((attempt) => !attempt.ok && attempt.error === 'ETIMEDOUT'), JSON.stringify(dropped));
  // Nothing listens on the node's port 22 and no frontend has it: the node itself refuses.
  const untouched = await w.connect('tcp', NODE.v4, 22, 1);
  t.deepEqual(untouched.map((attempt) => attempt.error), ['ECONNREFUSED']);
});

test('kernel: ebpf tc ingress: NodeRules planned into the maps: a Local load balancer keeps the client and this node\'s endpoint, a Cluster node port masquerades, local sources use every endpoint', async (t) => {
  const w = await world(t);
  // GIVEN pod-a on this node (node-a) and pod-b on node-b, behind a Local load balancer and a Cluster node port
  const objects = [
    nodeObject('node-a'), nodeObject('node-b'),
    serviceObject({ name: 'lb', type: 'LoadBalancer', clusterIPs: ['10.96.0.11'], externalTrafficPolicy: 'Local', allocateLoadBalancerNodePorts: false, ports: [{ name: 'http', port: 80 }] },
      { loadBalancer: { ingress: [{ ip: LOAD_BALANCER }] } }),
    sliceObject('lb', [{ ip: ENDPOINTS.v4[0]!, node: 'node-a' }, { ip: ENDPOINTS.v4[1]!, node: 'node-b' }], { ports: [{ name: 'http', port: ENDPOINT_PORT, protocol: 'TCP' }] }),
    serviceObject({ name: 'np', type: 'NodePort', clusterIPs: ['10.96.0.12'], ports: [{ name: 'http', port: 80, nodePort: SERVICE.nodePort }] }),
    sliceObject('np', [{ ip: ENDPOINTS.v4[0]!, node: 'node-a' }, { ip: ENDPOINTS.v4[1]!, node: 'node-b' }], { ports: [{ name: 'http', port: ENDPOINT_PORT, protocol: 'TCP' }] }),
  ];
  const plan = (clusterCIDRs: string[]) => {
    const rules = computeNodeRules(clusterState(...objects), 'node-a', { ...testConfig, clusterCIDRs, nodePortAddresses: { kind: 'all' } });
    const sockets = planSockets(rules);
    return { sockets, packets: planPackets(rules, sockets, [NODE.podSide.v4, NODE.v4]) };
  };
  const outside = plan(['10.244.0.0/16']);
  await applySocketPlan(w.writer, w.socketMaps, undefined, outside.sockets);
  await applyPacketPlan(w.writer, w.packetMaps, undefined, outside.packets);

  // WHEN the client outside the cluster reaches the load balancer, THEN only pod-a serves, and it sees the client
  const lb = await w.connect('tcp', LOAD_BALANCER, 80, 20);
  t.true(lb.every((attempt) => attempt.ok && attempt.server === ENDPOINTS.v4[0] && attempt.peer === LOAD_BALANCER), JSON.stringify(lb.slice(0, 2)));
  t.is(await seenBy(w, LOAD_BALANCER, 80), CLIENT.v4);
  // AND the node port uses both pods, which see the node
  const nodePort = await w.connect('tcp', NODE.v4, SERVICE.nodePort, 20);
  t.deepEqual([...new Set(nodePort.map((attempt) => attempt.server))].sort(), [...ENDPOINTS.v4].sort(), failures(nodePort));
  t.is(await seenBy(w, NODE.v4, SERVICE.nodePort), NODE.podSide.v4);

  // WHEN the client's network counts as the cluster's own (detect-local), THEN the load balancer uses both pods
  const inside = plan(['10.0.1.0/24']);
  await applySocketPlan(w.writer, w.socketMaps, outside.sockets, inside.sockets);
  await applyPacketPlan(w.writer, w.packetMaps, outside.packets, inside.packets);
  const fromInside = await w.connect('tcp', LOAD_BALANCER, 80, 30);
  t.deepEqual([...new Set(fromInside.map((attempt) => attempt.server))].sort(), [...ENDPOINTS.v4].sort(), failures(fromInside));
  t.is(await seenBy(w, LOAD_BALANCER, 80), CLIENT.v4, 'and still without masquerade');
});

test('kernel: ebpf tc ingress: a load balancer with source ranges lets only those sources through', async (t) => {
  const w = await world(t);
  const objects = (ranges: string[]) => [
    nodeObject('node-a'),
    serviceObject({ name: 'ranged', type: 'LoadBalancer', clusterIPs: ['10.96.0.13'], allocateLoadBalancerNodePorts: false, loadBalancerSourceRanges: ranges, ports: [{ name: 'http', port: 80 }] },
      { loadBalancer: { ingress: [{ ip: LOAD_BALANCER }] } }),
    sliceObject('ranged', [{ ip: ENDPOINTS.v4[0]!, node: 'node-a' }], { ports: [{ name: 'http', port: ENDPOINT_PORT, protocol: 'TCP' }] }),
  ];
  const plan = (ranges: string[]) => {
    const rules = computeNodeRules(clusterState(...objects(ranges)), 'node-a', { ...testConfig, nodePortAddresses: { kind: 'all' } });
    const sockets = planSockets(rules);
    return { sockets, packets: planPackets(rules, sockets, [NODE.podSide.v4, NODE.v4]) };
  };
  // GIVEN ranges holding the client's network, THEN the client gets through
  const allowed = plan(['192.0.2.0/24', '10.0.1.0/24']);
  await applySocketPlan(w.writer, w.socketMaps, undefined, allowed.sockets);
  await applyPacketPlan(w.writer, w.packetMaps, undefined, allowed.packets);
  const through = await w.connect('tcp', LOAD_BALANCER, 80, 5);
  t.true(through.every((attempt) => attempt.ok && attempt.server === ENDPOINTS.v4[0]), failures(through));
  // WHEN the ranges no longer hold it, THEN its new connections are dropped
  const refused = plan(['192.0.2.0/24']);
  await applySocketPlan(w.writer, w.socketMaps, allowed.sockets, refused.sockets);
  t.deepEqual(await applyPacketPlan(w.writer, w.packetMaps, allowed.packets, refused.packets), { written: 0, deleted: 1 }, 'one range went, nothing else changed');
  const dropped = await w.connect('tcp', LOAD_BALANCER, 80, 2);
  t.deepEqual(dropped.map((attempt) => attempt.error), ['ETIMEDOUT', 'ETIMEDOUT']);
  // AND the cluster IP of the same Service, which no range guards, still answers
  const clusterIP = await w.connect('tcp', '10.96.0.13', 80, 3);
  t.true(clusterIP.every((attempt) => attempt.ok), failures(clusterIP));
});

test('kernel: ebpf tc ingress: ClientIP session affinity keeps a client on its endpoint across new connections', async (t) => {
  const w = await world(t);
  const objects = [
    nodeObject('node-a'), nodeObject('node-b'),
    serviceObject({ name: 'sticky', type: 'NodePort', clusterIPs: ['10.96.0.14'], sessionAffinity: 'ClientIP', ports: [{ name: 'http', port: 80, nodePort: SERVICE.nodePort }] }),
    sliceObject('sticky', [{ ip: ENDPOINTS.v4[0]!, node: 'node-a' }, { ip: ENDPOINTS.v4[1]!, node: 'node-b' }], { ports: [{ name: 'http', port: ENDPOINT_PORT, protocol: 'TCP' }] }),
  ];
  const rules = computeNodeRules(clusterState(...objects), 'node-a', { ...testConfig, nodePortAddresses: { kind: 'all' } });
  const sockets = planSockets(rules);
  const packets = planPackets(rules, sockets, [NODE.podSide.v4, NODE.v4]);
  t.is(packets.frontends.get(`0.0.0.0|${SERVICE.nodePort}|tcp`)?.[1].affinitySeconds, 10800, 'kube-proxy\'s default timeout');
  await applySocketPlan(w.writer, w.socketMaps, undefined, sockets);
  await applyPacketPlan(w.writer, w.packetMaps, undefined, packets);
  // Two endpoints of equal weight: 30 connections on one by chance alone is 2 in 10^9.
  for (const [host, port] of [['10.96.0.14', 80], [NODE.v4, SERVICE.nodePort]] as const) {
    const attempts = await w.connect('tcp', host, port, 30);
    t.true(attempts.every((attempt) => attempt.ok), failures(attempts));
    t.is(new Set(attempts.map((attempt) => attempt.server)).size, 1, `${host}: every connection on the first one's endpoint`);
  }
});

test('kernel: ebpf tc ingress: Services without endpoints are refused by the companion table, as kube-proxy rejects them', async (t) => {
  const w = await world(t);
  const objects = [
    nodeObject('node-a'),
    serviceObject({ name: 'empty', type: 'NodePort', clusterIPs: ['10.96.0.15'], ports: [{ name: 'http', port: 80, nodePort: SERVICE.nodePort }] }),
    serviceObject({ name: 'served', clusterIPs: ['10.96.0.16'], ports: [{ name: 'http', port: 80 }] }),
    sliceObject('served', [{ ip: ENDPOINTS.v4[0]!, node: 'node-a' }], { ports: [{ name: 'http', port: ENDPOINT_PORT, protocol: 'TCP' }] }),
  ];
  const rules = computeNodeRules(clusterState(...objects), 'node-a', { ...testConfig, nodePortAddresses: { kind: 'all' } });
  const sockets = planSockets(rules);
  await applySocketPlan(w.writer, w.socketMaps, undefined, sockets);
  await applyPacketPlan(w.writer, w.packetMaps, undefined, planPackets(rules, sockets, [NODE.podSide.v4, NODE.v4]));
  await w.node.run(['nft', '-f', '-'], companionScript(rules));
  // The cluster IP and the node port of the Service without endpoints: refused at once (not a timeout).
  t.deepEqual((await w.connect('tcp', '10.96.0.15', 80, 2)).map((attempt) => attempt.error), ['ECONNREFUSED', 'ECONNREFUSED']);
  t.deepEqual((await w.connect('tcp', NODE.v4, SERVICE.nodePort, 2)).map((attempt) => attempt.error), ['ECONNREFUSED', 'ECONNREFUSED']);
  // The other Service is served through the same table; the program translated its flows, so the nat
  // chain's counter (new flows it did not translate: the refused ones) does not move.
  const untranslated = async () => Number(/counter packets (\d+)/.exec(await w.node.run(['nft', 'list', 'chain', 'inet', 'ferry-ebpf', 'nat-prerouting']))?.[1]);
  const before = await untranslated();
  t.true(before >= 4, `${before}: the refused connections were new flows it did not translate`);
  const served = await w.connect('tcp', '10.96.0.16', 80, 5);
  t.true(served.every((attempt) => attempt.ok && attempt.server === ENDPOINTS.v4[0]), failures(served));
  t.is(await untranslated(), before);
});

test('kernel: ebpf tc ingress goes on every interface but loopback, on those that appear later, or only on the ones asked for', async (t) => {
  const w = await world(t);
  const hasProgram = async (device: string) => (await w.node.run(['tc', 'filter', 'show', 'dev', device, 'ingress'])).includes('ferry_ingress');
  // The world attached to n0 already; the rest of the node's interfaces get it now, loopback never.
  const attached = new Set(['n0']);
  t.deepEqual((await attachNewDevices(w.program, attached, w.nodeRunner)).sort(), ['br0', 'n1', 'n2']);
  for (const device of ['n0', 'n1', 'n2', 'br0']) t.true(await hasProgram(device), device);
  t.false(await hasProgram('lo'));
  // An interface that appears is attached on the next look; one that goes away is forgotten.
  await w.node.run(['ip', 'link', 'add', 'x0', 'type', 'veth', 'peer', 'name', 'x1']);
  t.deepEqual((await attachNewDevices(w.program, attached, w.nodeRunner)).sort(), ['x0', 'x1']);
  t.true(await hasProgram('x1'));
  await w.node.run(['ip', 'link', 'del', 'x0']);
  t.deepEqual(await attachNewDevices(w.program, attached, w.nodeRunner), []);
  t.false(attached.has('x0') || attached.has('x1'), 'gone interfaces are forgotten');
  // --devices: only the ones asked for, of those that exist.
  await w.node.run(['ip', 'link', 'add', 'y0', 'type', 'veth', 'peer', 'name', 'y1']);
  t.deepEqual(await attachNewDevices(w.program, attached, w.nodeRunner, ['y1', 'missing']), ['y1']);
  t.false(await hasProgram('y0'));
});

test('kernel: ebpf tc ingress: a restart keeps the packet maps, and the new program takes over the interface without a gap in service', async (t) => {
  const w = await world(t);
  await writeGroup(w.writer, w.groups, 1, ENDPOINTS.v4.map((ip) => ({ ip, port: ENDPOINT_PORT, weight: 1 })), 0);
  await w.writer.update(w.frontends, [[{ ip: SERVICE.v4, port: SERVICE.port, protocol: 'tcp' }, { group: 1, verdict: 'serve', masquerade: 'never', ranged: false, localSourceGroup: 0, affinitySeconds: 0 }]]);
  t.true((await w.connect('tcp', SERVICE.v4, SERVICE.port, 5)).every((attempt) => attempt.ok));
  // WHEN the program is loaded again over the same pins and replaces the old one on n0
  const again = await loadPacketProgram(w.sockets, { cacheDir: CACHE });
  await attachPacketProgram(again, 'n0', w.nodeRunner);
  await forgetEarlierPacketPrograms(again);
  // THEN its maps are the old ones, the Service answers with nothing written, and one filter is there
  t.true(again.reusedMaps);
  const attempts = await w.connect('tcp', SERVICE.v4, SERVICE.port, 10);
  t.true(attempts.every((attempt) => attempt.ok), failures(attempts));
  const filters = await w.node.run(['tc', 'filter', 'show', 'dev', 'n0', 'ingress']);
  const newId = (JSON.parse(await runChecked(execaRunner, 'the new program', 'bpftool', ['-j', 'prog', 'show', 'pinned', again.program])) as { id: number }).id;
  t.deepEqual([...filters.matchAll(/ id (\d+) name ferry_ingress/g)].map((match) => Number(match[1])), [newId], filters);
  t.deepEqual(readdirSync(w.sockets.pinDir).filter((name) => name.startsWith('packet-progs')), [basename(dirname(again.program))]);
});

test.after.always('kernel: ebpf tc: every cgroup, bpffs and namespace the tests made is gone', (t) => {
  t.deepEqual(leftovers(), [], 'cgroups and bpffs mounts');
  const namespaces = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
  for (const ns of createdNamespaces) t.false(namespaces.includes(ns), `${ns} was deleted`);
});
