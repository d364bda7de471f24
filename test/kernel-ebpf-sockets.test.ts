import test, { type ExecutionContext } from 'ava';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { execa } from 'execa';
import { packageRoot } from '../controlplane/package-root.js';
import { execaRunner, runChecked, type Runner } from '../dataplane/runner.js';
import { buildPacketsObject, buildSocketsObject } from '../dataplane/ebpf/build.js';
import type { WeightedEndpoint } from '../dataplane/ebpf/groups.js';
import { writeGroup } from './helpers/ebpf-groups.js';
import { MAPS, type Frontend, type FrontendKey, type Group, type Slot, type SlotKey } from '../dataplane/ebpf/layout.js';
import { MapWriter, type OpenMap } from '../dataplane/ebpf/map-writer.js';
import { attachSocketPrograms, loadPacketProgram, loadSocketPrograms, probeSockets, SOCKET_HOOKS } from '../dataplane/ebpf/programs.js';
import { openNodeMaps, planNode, syncNodePlan } from '../dataplane/ebpf/node-plan.js';
import { readNodePlan } from '../dataplane/ebpf/read-back.js';
import { servedDigest } from '../dataplane/ebpf/digest.js';
import { EbpfUnavailableError } from '../dataplane/ebpf/unavailable.js';
import { applySocketPlan, planSockets } from '../dataplane/ebpf/plan.js';
import type { NodeRules, ServicePortRules } from '../rules/node-rules.js';
import { bpfWorkspace, leftovers } from './helpers/bpf-workspace.js';
import { ECHO_CLIENT as CLIENT, type Attempt } from './helpers/echo-client.js';
import { throwawayNamespace } from './helpers/netns-runner.js';
import { binomialCdf } from './helpers/statistics.js';

// Socket-level balancing in the real kernel. Each test makes its own network namespace (endpoints on
// its loopback), a cgroup under the cgroup2 mount with ferry's programs attached, a bpffs of its own
// for the pins, and runs clients inside that cgroup and namespace.
const CACHE = join(tmpdir(), 'ferry-test-cache');
const ECHO_SERVER = join(packageRoot(), 'dist', 'e2e', 'echo-server.js');

// Address plan: Services that exist only in the maps (no interface has them), endpoints on lo.
const SERVICE = { v4: '10.96.0.10', v6: 'fd00:96::10', port: 80 };
const ENDPOINTS = {
  v4: [{ ip: '10.0.0.1', port: 8081 }, { ip: '10.0.0.2', port: 8082 }, { ip: '10.0.0.3', port: 8083 }],
  v6: [{ ip: 'fd00::1', port: 8081 }, { ip: 'fd00::2', port: 8082 }, { ip: 'fd00::3', port: 8083 }],
};


const createdNamespaces: string[] = [];

/** One test's world: namespace, cgroup with the programs attached, pins, map writer and endpoints. */
interface Lab {
  ns: string;
  cgroup: string;
  pinDir: string;
  writer: MapWriter;
  maps: { frontends: OpenMap<FrontendKey, Frontend>; groups: OpenMap<number, Group>; slots: OpenMap<SlotKey, Slot> };
  /** Runs the client inside the cgroup (or, with `inCgroup: false`, beside it) and the namespace. */
  client(proto: 'tcp' | 'udp' | 'udp-socket', host: string, port: number, count: number, options?: { inCgroup?: boolean }): Promise<Attempt[]>;
}

/** `packets`: the packet program loaded too (not attached), so that whole node plans can be written. */
async function lab(t: ExecutionContext, options: { packets?: boolean } = {}): Promise<Lab> {
  const { name: ns, runner } = await throwawayNamespace(t);
  createdNamespaces.push(ns);
  const { cgroup, pinDir } = await bpfWorkspace(t);
  const made: { writer?: MapWriter } = {};
  // After the workspace's, so it runs first (ava runs teardowns last in, first out).
  t.teardown(async () => {
    await made.writer?.close().catch(() => undefined);
  });

  const inNs = (...command: string[]) => runChecked(runner, `in ${ns}`, 'ip', command);
  for (const { ip } of [...ENDPOINTS.v4, ...ENDPOINTS.v6]) await inNs('address', 'add', ip.includes(':') ? `${ip}/128` : `${ip}/32`, 'dev', 'lo', ...(ip.includes(':') ? ['nodad'] : []));

  const programs = await loadSocketPrograms({ pinDir, cgroup, cacheDir: CACHE });
  await attachSocketPrograms(programs, cgroup);
  if (options.packets) await loadPacketProgram(programs, { cacheDir: CACHE });
  const writer = await MapWriter.start({ cacheDir: CACHE });
  made.writer = writer;
  const maps = {
    frontends: await writer.open(MAPS.frontends, programs.maps.frontends),
    groups: await writer.open(MAPS.groups, programs.maps.groups),
    slots: await writer.open(MAPS.slots, programs.maps.slots),
  };

  if (!existsSync(ECHO_SERVER)) throw new Error(`${ECHO_SERVER} is missing: npm run build first`);
  const server = execa('ip', ['netns', 'exec', ns, process.execPath, ECHO_SERVER, ...ENDPOINTS.v4.flatMap(({ port }) => ['--port', String(port)])], { reject: false, buffer: false, stdout: 'pipe', cleanup: false });
  await new Promise<void>((resolve, reject) => {
    server.stdout.on('data', (chunk: Buffer) => String(chunk).includes('ready') && resolve());
    void server.then(() => reject(new Error('the echo server exited before it was ready')));
  });

  return {
    ns, cgroup, pinDir, writer, maps,
    async client(proto, host, port, count, options = {}) {
      const node = ['ip', 'netns', 'exec', ns, process.execPath, '--input-type=module', '-e', CLIENT, proto, host, String(port), String(count)];
      // The shell moves itself into the cgroup, then becomes the client: every socket it opens is the cgroup's.
      const argv = options.inCgroup === false ? node : ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, ...node];
      const result = await execa(argv[0]!, argv.slice(1), { reject: false });
      if (result.exitCode !== 0) throw new Error(`client exited ${result.exitCode}: ${result.stderr}`);
      return String(result.stdout).trim().split('\n').map((line) => JSON.parse(line) as Attempt);
    },
  };
}

/** Points frontend {ip, port, proto} at group `group` with these endpoints (first write of the group). */
async function serve(lab: Lab, frontend: FrontendKey, group: number, endpoints: WeightedEndpoint[], affinitySeconds = 0): Promise<void> {
  await writeGroup(lab.writer, lab.maps, group, endpoints, 0);
  await lab.writer.update(lab.maps.frontends, [[frontend, { group, verdict: 'serve', affinitySeconds }]]);
}

const ports = (attempts: Attempt[]) => [...new Set(attempts.map((attempt) => attempt.endpointPort))].sort();
const all = (weight: number, endpoints: Array<{ ip: string; port: number }>) => endpoints.map((endpoint) => ({ ...endpoint, weight }));

test('kernel: ebpf TCP connects to a Service reach its endpoints, and getpeername shows the Service address (IPv4 and IPv6)', async (t) => {
  const world = await lab(t);
  for (const family of ['v4', 'v6'] as const) {
    // GIVEN a Service frontend with three endpoints
    await serve(world, { ip: SERVICE[family], port: SERVICE.port, protocol: 'tcp' }, family === 'v4' ? 1 : 2, all(1, ENDPOINTS[family]));
    // WHEN a client in the cgroup connects to the Service address 30 times
    const attempts = await world.client('tcp', SERVICE[family], SERVICE.port, 30);
    // THEN every connection reaches an endpoint, all three are used, and the socket's peer is the Service
    t.true(attempts.every((attempt) => attempt.ok), JSON.stringify(attempts.filter((attempt) => !attempt.ok)));
    t.deepEqual(ports(attempts), [8081, 8082, 8083], `${family}: every endpoint answers`);
    t.true(attempts.every((attempt) => ENDPOINTS[family].some(({ ip, port }) => ip === attempt.server && port === attempt.endpointPort)), `${family}: the server saw its own address`);
    t.true(attempts.every((attempt) => attempt.peer === SERVICE[family] && attempt.peerPort === SERVICE.port), `${family}: getpeername: ${JSON.stringify(attempts[0])}`);
  }
  // An AF_INET6 socket aimed at the IPv4 Service as ::ffff:10.96.0.10 goes through connect6 and finds
  // the same frontend: the maps hold IPv4 as v4-mapped addresses.
  const mapped = await world.client('tcp', `::ffff:${SERVICE.v4}`, SERVICE.port, 10);
  t.true(mapped.every((attempt) => attempt.ok && ENDPOINTS.v4.some(({ ip }) => ip === attempt.server)), JSON.stringify(mapped));
  t.true(mapped.every((attempt) => attempt.peer === `::ffff:${SERVICE.v4}`), `getpeername6 shows the mapped Service address: ${mapped[0]?.peer}`);
});

test('kernel: ebpf unconnected UDP datagrams to a Service are balanced, and replies come from the Service address (IPv4 and IPv6)', async (t) => {
  const world = await lab(t);
  for (const family of ['v4', 'v6'] as const) {
    await serve(world, { ip: SERVICE[family], port: 53, protocol: 'udp' }, family === 'v4' ? 1 : 2, all(1, ENDPOINTS[family]));
    const attempts = await world.client('udp', SERVICE[family], 53, 30);
    t.true(attempts.every((attempt) => attempt.ok), JSON.stringify(attempts.filter((attempt) => !attempt.ok)));
    t.deepEqual(ports(attempts), [8081, 8082, 8083], `${family}: sendmsg spreads datagrams over every endpoint`);
    t.true(attempts.every((attempt) => attempt.peer === SERVICE[family] && attempt.peerPort === 53), `${family}: recvmsg shows the Service as the source: ${JSON.stringify(attempts[0])}`);
  }
  // One socket's datagrams to the Service stay with one endpoint, as one conntrack flow would (the
  // check that the endpoint is still in the group is the one the affinity test below proves).
  const flow = await world.client('udp-socket', SERVICE.v4, 53, 20);
  t.true(flow.every((attempt) => attempt.ok && attempt.peer === SERVICE.v4), JSON.stringify(flow.filter((attempt) => !attempt.ok)));
  t.is(ports(flow).length, 1, `one socket, one endpoint: ${ports(flow).join(',')}`);

  // A TCP-only frontend is not a UDP one: the protocol is part of the key, so UDP to the TCP port goes nowhere balanced.
  await world.writer.update(world.maps.frontends, [[{ ip: SERVICE.v4, port: SERVICE.port, protocol: 'tcp' }, { group: 1, verdict: 'serve', affinitySeconds: 0 }]]);
  const unbalanced = await world.client('udp', SERVICE.v4, SERVICE.port, 1);
  t.is(unbalanced[0]!.error, 'ENETUNREACH', JSON.stringify(unbalanced));
});

test('kernel: ebpf weights 1:3 over 400 TCP connections give shares within the binomial bound', async (t) => {
  const world = await lab(t);
  const [light, heavy] = ENDPOINTS.v4;
  await serve(world, { ip: SERVICE.v4, port: SERVICE.port, protocol: 'tcp' }, 1, [{ ...light!, weight: 1 }, { ...heavy!, weight: 3 }]);
  const n = 400;
  const attempts = await world.client('tcp', SERVICE.v4, SERVICE.port, n);
  t.true(attempts.every((attempt) => attempt.ok));
  const toLight = attempts.filter((attempt) => attempt.endpointPort === light!.port).length;
  t.is(attempts.filter((attempt) => attempt.endpointPort === heavy!.port).length, n - toLight, 'only the two endpoints of the group answer');
  // The light endpoint's count is Binomial(400, 1/4) (mean 100). The bounds [lower, upper] are where
  // each tail holds below 5e-7: a correct program fails this with probability < 1e-6.
  let lower = 0;
  while (binomialCdf(lower, n, 0.25) < 5e-7) lower += 1;
  let upper = n;
  while (1 - binomialCdf(upper - 1, n, 0.25) < 5e-7) upper -= 1;
  t.log(`light endpoint: ${toLight} of ${n} (allowed ${lower}..${upper})`);
  t.true(toLight >= lower && toLight <= upper, `${toLight} of ${n} to the weight-1 endpoint, allowed ${lower}..${upper}`);
});

test('kernel: ebpf a Service without endpoints refuses at once (ECONNREFUSED), a drop verdict leaves the call untranslated, other addresses are untouched', async (t) => {
  const world = await lab(t);
  // GIVEN a frontend whose group is empty, and one with the reject verdict
  await serve(world, { ip: SERVICE.v4, port: SERVICE.port, protocol: 'tcp' }, 1, []);
  await world.writer.update(world.maps.frontends, [[{ ip: SERVICE.v4, port: 53, protocol: 'udp' }, { group: 0, verdict: 'reject', affinitySeconds: 0 }]]);
  const tcp = await world.client('tcp', SERVICE.v4, SERVICE.port, 3);
  t.deepEqual(tcp.map((attempt) => attempt.error), ['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED'], 'connect() is refused by bpf_set_retval');
  const udp = await world.client('udp', SERVICE.v4, 53, 1);
  t.is(udp[0]!.error, 'ECONNREFUSED', 'sendmsg() is refused the same way');

  // GIVEN a Local-policy frontend without a local endpoint (drop) THEN the call goes on to the Service
  // address itself (the companion table drops it on a node); this namespace has no route there.
  await world.writer.update(world.maps.frontends, [[{ ip: SERVICE.v4, port: SERVICE.port, protocol: 'tcp' }, { group: 1, verdict: 'drop', affinitySeconds: 0 }]]);
  t.is((await world.client('tcp', SERVICE.v4, SERVICE.port, 1))[0]!.error, 'ENETUNREACH');

  // An endpoint's own address is not a frontend: connecting to it directly is left alone.
  const direct = await world.client('tcp', ENDPOINTS.v4[1]!.ip, ENDPOINTS.v4[1]!.port, 1);
  t.true(direct[0]!.ok && direct[0]!.endpointPort === 8082 && direct[0]!.peer === ENDPOINTS.v4[1]!.ip, JSON.stringify(direct));
});

test('kernel: ebpf a process outside the cgroup is not balanced: its connect to the Service address goes nowhere', async (t) => {
  const world = await lab(t);
  await serve(world, { ip: SERVICE.v4, port: SERVICE.port, protocol: 'tcp' }, 1, all(1, ENDPOINTS.v4));
  t.true((await world.client('tcp', SERVICE.v4, SERVICE.port, 1))[0]!.ok, 'inside the cgroup it is balanced');
  // The namespace has no route to 10.96.0.10: only the programs could have made this connect work.
  const outside = await world.client('tcp', SERVICE.v4, SERVICE.port, 1, { inCgroup: false });
  t.is(outside[0]!.error, 'ENETUNREACH', JSON.stringify(outside));
});

test('kernel: ebpf growing a group 1 → 3 and shrinking it 3 → 1 through the map writer takes effect for new connections', async (t) => {
  const world = await lab(t);
  const key = { ip: SERVICE.v4, port: SERVICE.port, protocol: 'tcp' } as const;
  await serve(world, key, 7, all(1, ENDPOINTS.v4.slice(0, 1)));
  t.deepEqual(ports(await world.client('tcp', SERVICE.v4, SERVICE.port, 10)), [8081]);

  await writeGroup(world.writer, world.maps, 7, all(1, ENDPOINTS.v4), 1);
  t.deepEqual(await world.writer.dump(world.maps.groups), [[7, { count: 3, total: 3 }]]);
  t.deepEqual(ports(await world.client('tcp', SERVICE.v4, SERVICE.port, 30)), [8081, 8082, 8083], 'after growing, all three answer');

  await writeGroup(world.writer, world.maps, 7, all(1, ENDPOINTS.v4.slice(2)), 3);
  t.deepEqual(ports(await world.client('tcp', SERVICE.v4, SERVICE.port, 10)), [8083], 'after shrinking, only the one left answers');
  const slots = await world.writer.dump(world.maps.slots);
  t.deepEqual(slots, [[{ group: 7, index: 0 }, { ip: '10.0.0.3', port: 8083, cumulative: 1 }]], 'the surplus slots are gone');
});

test('kernel: ebpf connections made while a group grows and shrinks again and again all reach an endpoint (the write order keeps every slot a connect can pick)', async (t) => {
  const world = await lab(t);
  const three = ENDPOINTS.v4.map((endpoint, index) => ({ ...endpoint, weight: index + 1 }));
  const one = [{ ...ENDPOINTS.v4[2]!, weight: 5 }];
  await serve(world, { ip: SERVICE.v4, port: SERVICE.port, protocol: 'tcp' }, 1, one);
  let done = false;
  let changes = 0;
  const attempts: Awaited<ReturnType<typeof world.client>> = [];
  // Connections in batches until the writer has changed the group often enough under them, however
  // fast either side runs on a busy machine (bounded: 3,000 connections at most).
  const traffic = (async () => {
    while ((attempts.length < 300 || changes < 20) && attempts.length < 3000) attempts.push(...await world.client('tcp', SERVICE.v4, SERVICE.port, 50));
  })().finally(() => (done = true));
  for (let count = 1; !done; changes++) {
    const next = count === 1 ? three : one;
    await writeGroup(world.writer, world.maps, 1, next, count);
    count = next.length;
  }
  await traffic;
  t.log(`${changes} group changes during ${attempts.length} connections`);
  t.true(changes >= 20, `only ${changes} changes overlapped ${attempts.length} connections`);
  t.deepEqual(attempts.filter((attempt) => !attempt.ok), [], 'no connect met a missing slot (that would be ECONNREFUSED)');
});

test('kernel: ebpf ClientIP affinity keeps one namespace on one endpoint while the endpoint stays in the group', async (t) => {
  const world = await lab(t);
  await serve(world, { ip: SERVICE.v4, port: SERVICE.port, protocol: 'tcp' }, 1, all(1, ENDPOINTS.v4), 600);
  const sticky = await world.client('tcp', SERVICE.v4, SERVICE.port, 20);
  t.is(ports(sticky).length, 1, `every connection of the client goes to the endpoint it got first: ${ports(sticky).join(',')}`);
  // WHEN that endpoint leaves the group THEN the client is balanced anew, to the ones left.
  const first = sticky[0]!.endpointPort;
  const rest = ENDPOINTS.v4.filter((endpoint) => endpoint.port !== first);
  await writeGroup(world.writer, world.maps, 1, all(1, rest), 3);
  const moved = await world.client('tcp', SERVICE.v4, SERVICE.port, 10);
  t.is(ports(moved).length, 1);
  t.not(moved[0]!.endpointPort, first);
});

test('kernel: ebpf the map writer round-trips entries in batches, deletes absent keys quietly and rejects bad input', async (t) => {
  const world = await lab(t);
  const slots = Array.from({ length: 5000 }, (_, index) => [{ group: 9, index }, { ip: `fd00::${(index + 1).toString(16)}`, port: 1 + index, cumulative: index + 1 }] as const);
  t.is(await world.writer.update(world.maps.slots, slots), 5000);
  const dumped = await world.writer.dump(world.maps.slots);
  t.deepEqual(dumped.sort(([a], [b]) => a.index - b.index), slots.map(([key, value]) => [key, value]));
  t.is(await world.writer.delete(world.maps.slots, [{ group: 9, index: 0 }, { group: 9, index: 99999 }, { group: 9, index: 1 }]), 3);
  t.is((await world.writer.dump(world.maps.slots)).length, 4998);
  // What a frontend serves, summed by the helper, is what TypeScript sums for the same frontend and
  // endpoints, whatever the group's id; another weight, or a slot missing, sums otherwise.
  const endpoints = all(1, ENDPOINTS.v4).map((endpoint, index) => ({ ...endpoint, weight: index + 1 }));
  await serve(world, { ip: SERVICE.v4, port: SERVICE.port, protocol: 'tcp' }, 7, endpoints);
  const served = async () => (await world.writer.served(world.maps.groups, world.maps.slots, [[world.maps.frontends, [0]]])).tables[0]!;
  const summed = (group: number, members: typeof endpoints) => servedDigest(MAPS.frontends, [[{ ip: SERVICE.v4, port: SERVICE.port, protocol: 'tcp' }, { group, verdict: 'serve', affinitySeconds: 0 }]], [0], (id) => (id === group ? members : undefined));
  t.deepEqual(await served(), summed(7, endpoints));
  t.deepEqual(await served(), summed(42, endpoints), 'group ids are left out');
  t.notDeepEqual(await served(), summed(7, endpoints.map((endpoint) => ({ ...endpoint, weight: 1 }))));
  await world.writer.delete(world.maps.slots, [{ group: 7, index: 1 }]);
  t.notDeepEqual(await served(), summed(7, endpoints), 'a slot missing');
  t.deepEqual(await world.writer.served(world.maps.groups, world.maps.slots, []).then(({ groups, slots }) => [groups, slots]), [1, 4998 + 2], 'the groups and slots are counted');
  await t.throwsAsync(world.writer.open(MAPS.groups, join(world.cgroup, 'no-such-pin')), { message: /No such file/ });
  t.is((await world.writer.dump(world.maps.groups)).length, 1, 'the writer keeps answering after an error');
  // Writes in order, all sent at once: none after the first that fails runs; other writes do.
  const writes = world.writer.inOrder();
  writes.update(world.maps.groups, [[70, { count: 1, total: 1 }]]);
  writes.update({ ...world.maps.groups, name: 'not-open' }, [[71, { count: 1, total: 1 }]]);
  writes.update(world.maps.groups, [[72, { count: 1, total: 1 }]]);
  writes.delete(world.maps.groups, [70]);
  const outside = world.writer.update(world.maps.groups, [[73, { count: 1, total: 1 }]]);
  await t.throwsAsync(writes.done(), { message: /not-open|no such map/ });
  t.is(await outside, 1);
  t.deepEqual((await world.writer.dump(world.maps.groups)).map(([id]) => id).sort((a, b) => a - b), [7, 70, 73], 'the writes after the failure did not run');
});

/** One TCP Service port on port 80 whose cluster IP leads to `internal`, with the cluster group's endpoints. */
function servicePort(name: string, clusterIP: string, internal: ServicePortRules['internal'], endpoints: Array<{ ip: string; port: number }>, externalIPs: string[] = []): ServicePortRules {
  return {
    id: `default/${name}:80/tcp`, hash: name.toUpperCase(), protocol: 'tcp', clusterIP, port: 80, nodePort: 0, externalIPs, loadBalancerIPs: [], internal, affinitySeconds: 0, servingEndpoints: endpoints.map((endpoint) => endpoint.ip),
    ...(endpoints.length ? { cluster: { clusterIPMasquerade: 'none', endpoints: endpoints.map((endpoint) => ({ ...endpoint, weight: 1, onNode: false })) } } : {}),
  };
}

function nodeRules(v4: ServicePortRules[], v6: ServicePortRules[]): NodeRules {
  const family = (name: 'IPv4' | 'IPv6', servicePorts: ServicePortRules[]) => ({ family: name, nodePortAddresses: { kind: 'all' as const }, serviceCIDRs: [], clusterIPs: servicePorts.map((port) => port.clusterIP), servicePorts });
  return { node: 'node-a', masqueradeMark: '0x4000', families: [family('IPv4', v4), family('IPv6', v6)], healthChecks: [] };
}

test('kernel: ebpf NodeRules planned into the maps serve cluster IPs, external IPs and verdicts, and a second plan applies only the difference', async (t) => {
  const world = await lab(t);
  const [one, two, three] = ENDPOINTS.v4;
  const first = planSockets(nodeRules([
    servicePort('web', '10.96.0.10', 'cluster', [one!, two!], ['192.0.2.10']),
    servicePort('empty', '10.96.0.30', 'reject', []),
    servicePort('local', '10.96.0.40', 'drop', []),
  ], [servicePort('web6', 'fd00:96::10', 'cluster', [ENDPOINTS.v6[0]!])]));
  await applySocketPlan(world.writer, world.maps, undefined, first);
  t.deepEqual(ports(await world.client('tcp', '10.96.0.10', 80, 30)), [8081, 8082]);
  t.deepEqual(ports(await world.client('tcp', '192.0.2.10', 80, 30)), [8081, 8082], 'an external IP leads to the cluster group from inside');
  t.is((await world.client('tcp', '10.96.0.30', 80, 1))[0]!.error, 'ECONNREFUSED');
  // A drop goes on untranslated (a node's companion table drops it); this namespace has no route there.
  t.is((await world.client('tcp', '10.96.0.40', 80, 1))[0]!.error, 'ENETUNREACH');
  t.deepEqual(ports(await world.client('tcp', 'fd00:96::10', 80, 5)), [8081]);

  // WHEN web shrinks to another endpoint, empty gets one and local goes away
  const second = planSockets(nodeRules([
    servicePort('web', '10.96.0.10', 'cluster', [three!], ['192.0.2.10']),
    servicePort('empty', '10.96.0.30', 'cluster', [one!]),
  ], [servicePort('web6', 'fd00:96::10', 'cluster', [ENDPOINTS.v6[0]!])]), first);
  t.is(second.ids.get('WEB/cluster'), first.ids.get('WEB/cluster'), 'a group keeps its id');
  const changes = await applySocketPlan(world.writer, world.maps, first, second);
  // web: 1 slot + group; empty: 1 slot + group + frontend. Deleted: web's surplus slot, local's frontend.
  t.deepEqual(changes, { written: 5, deleted: 2 });
  t.deepEqual(ports(await world.client('tcp', '10.96.0.10', 80, 10)), [8083]);
  t.deepEqual(ports(await world.client('tcp', '10.96.0.30', 80, 5)), [8081]);
  t.is((await world.client('tcp', '10.96.0.40', 80, 1))[0]!.error, 'ENETUNREACH', 'a removed frontend is no longer balanced');
  const groups = new Map(await world.writer.dump(world.maps.groups));
  t.deepEqual([...groups.keys()].sort(), [...second.groups.keys()].sort(), 'the kernel holds exactly the planned groups');
  t.is((await world.writer.dump(world.maps.slots)).length, 3);
  t.is((await world.writer.dump(world.maps.frontends)).length, 4);
  t.deepEqual(await applySocketPlan(world.writer, world.maps, second, planSockets(nodeRules([
    servicePort('web', '10.96.0.10', 'cluster', [three!], ['192.0.2.10']),
    servicePort('empty', '10.96.0.30', 'cluster', [one!]),
  ], [servicePort('web6', 'fd00:96::10', 'cluster', [ENDPOINTS.v6[0]!])]), second)), { written: 0, deleted: 0 }, 'the same rules again write nothing');
});

/** The id of the table an array of maps holds (bpftool prints entry 0's value as the inner map's id). */
async function tableId(path: string): Promise<number> {
  const entry = JSON.parse(await runChecked(execaRunner, 'table', 'bpftool', ['-j', 'map', 'lookup', 'pinned', path, 'key', '0', '0', '0', '0'])) as { value: number | string[] };
  return typeof entry.value === 'number' ? entry.value : Buffer.from(entry.value.map((byte) => Number(byte))).readUInt32LE(0);
}

test('kernel: ebpf a full sync that changes most of the node swaps in fresh tables: connections made while it happens again and again all reach an endpoint, the old groups go, and a writer of the old table is refused', async (t) => {
  const world = await lab(t, { packets: true });
  const maps = await openNodeMaps(world.writer, world.pinDir);
  const [one, two, three] = ENDPOINTS.v4;
  // The Service the clients use stays; the five others change address at every sync, so most of the node differs.
  const others = (net: number) => Array.from({ length: 5 }, (_, index) => servicePort(`other${index}`, `10.96.${net}.${index + 1}`, 'cluster', [one!]));
  const states = [
    nodeRules([servicePort('web', SERVICE.v4, 'cluster', [one!]), ...others(1)], []),
    nodeRules([servicePort('web', SERVICE.v4, 'cluster', [two!, three!]), ...others(2)], []),
  ];
  const sync = async (index: number) => syncNodePlan(world.writer, maps, (await readNodePlan(world.writer, maps)).plan, planNode(states[index % 2]!, []), () => undefined);
  t.false((await sync(0)).replaced, 'maps that hold nothing are written in place');
  const tableBefore = await tableId(join(world.pinDir, 'maps', 'frontends'));
  const elsewhere = await MapWriter.start({ cacheDir: CACHE });
  t.teardown(() => elsewhere.close());
  const heldElsewhere = await elsewhere.open(MAPS.frontends, join(world.pinDir, 'maps', 'frontends'));

  let done = false;
  let syncs = 0;
  const replaced: boolean[] = [];
  const attempts: Awaited<ReturnType<typeof world.client>> = [];
  // As above: connections until enough replaces happened under them, bounded.
  const traffic = (async () => {
    while ((attempts.length < 300 || syncs < 10) && attempts.length < 3000) attempts.push(...await world.client('tcp', SERVICE.v4, SERVICE.port, 50));
  })().finally(() => (done = true));
  while (!done) replaced.push((await sync(++syncs)).replaced);
  await traffic;
  t.log(`${syncs} replaces during ${attempts.length} connections`);
  t.true(syncs >= 10, `only ${syncs} replaces overlapped ${attempts.length} connections`);
  t.true(replaced.every(Boolean), 'each of these syncs replaced the tables');
  t.deepEqual(attempts.filter((attempt) => !attempt.ok), [], 'no connect met an empty table or a missing group');
  t.not(await tableId(join(world.pinDir, 'maps', 'frontends')), tableBefore, 'another table is in place');

  // The last state is in the maps, and nothing of the ones before it.
  const last = states[syncs % 2]!;
  const kernel = (await readNodePlan(world.writer, maps)).plan;
  t.deepEqual([...kernel.sockets.frontends.keys()].sort(), last.families[0]!.servicePorts.map((port) => `${port.clusterIP}|80|tcp`).sort());
  t.is(kernel.sockets.groups.size, 6, 'one group per Service: the old groups went');
  t.is((await world.writer.dump(maps.sockets.slots)).length, syncs % 2 ? 7 : 6, 'and their slots');
  t.deepEqual(ports(await world.client('tcp', SERVICE.v4, SERVICE.port, 20)), syncs % 2 ? [8082, 8083] : [8081]);
  // A writer still holding a table that is no longer in place (another process replaced it) is refused.
  await t.throwsAsync(elsewhere.update(heldElsewhere, [[{ ip: '10.96.9.9', port: 80, protocol: 'tcp' }, { group: 1, verdict: 'serve', affinitySeconds: 0 }]]), { message: /Stale/ });
});

test('kernel: ebpf a restart keeps the maps: a second load reuses every pinned map, Services answer without a write, one set of programs stays attached', async (t) => {
  const world = await lab(t);
  await serve(world, { ip: SERVICE.v4, port: SERVICE.port, protocol: 'tcp' }, 1, all(1, ENDPOINTS.v4.slice(0, 2)));
  t.deepEqual(ports(await world.client('tcp', SERVICE.v4, SERVICE.port, 20)), [8081, 8082]);
  // WHEN the programs are loaded and attached again over the same pins (an agent restart)
  const again = await loadSocketPrograms({ pinDir: world.pinDir, cgroup: world.cgroup, cacheDir: CACHE });
  await attachSocketPrograms(again, world.cgroup);
  // THEN the maps kept their entries, the Service answers with nothing written, and only the new programs run
  t.true(again.reusedMaps);
  t.deepEqual(ports(await world.client('tcp', SERVICE.v4, SERVICE.port, 20)), [8081, 8082]);
  const attached = JSON.parse(await runChecked(execaRunner, 'list', 'bpftool', ['-j', 'cgroup', 'show', world.cgroup])) as Array<{ name: string }>;
  t.is(attached.filter((program) => program.name.startsWith('ferry_')).length, SOCKET_HOOKS.length, 'one program per hook');
  t.deepEqual(readdirSync(world.pinDir).filter((name) => name.startsWith('progs')), [basename(dirname(again.programs.connect4))], 'the earlier programs\' pins are gone');
});

test('kernel: ebpf the probe names what is missing', async (t) => {
  const error = await t.throwsAsync(probeSockets({ pinDir: join(tmpdir(), 'ferryk-not-bpffs', 'ferry'), cgroup: join(tmpdir(), 'ferryk-not-a-cgroup') }), { instanceOf: EbpfUnavailableError });
  t.regex(error!.message, /ferryk-not-bpffs is not on a bpffs \(mount -t bpf bpf/);
  t.regex(error!.message, /ferryk-not-a-cgroup is not a cgroup2 directory/);
});

test('kernel: ebpf the probe asks for clang only when an object has to be compiled', async (t) => {
  const asked: string[] = [];
  const missingTools: Runner = { run: async (command) => { asked.push(command); return { exitCode: 127, stdout: '', stderr: `${command}: not found` }; } };
  const placement = { pinDir: join(tmpdir(), 'ferryk-not-bpffs', 'ferry'), cgroup: join(tmpdir(), 'ferryk-not-a-cgroup'), runner: missingTools };
  // An empty cache: both objects would be compiled.
  const emptyCache = mkdtempSync(join(tmpdir(), 'ferryk-cache-'));
  try {
    const error = await t.throwsAsync(probeSockets({ ...placement, cacheDir: emptyCache }), { instanceOf: EbpfUnavailableError });
    t.regex(error!.message, /clang not found \(apt-get install clang/);
    t.regex(error!.message, /bpftool not found \(apt-get install bpftool\)/);
  } finally {
    rmSync(emptyCache, { recursive: true, force: true });
  }
  // The default cache, which the other tests' loads filled: no compiler needed.
  await buildSocketsObject();
  await buildPacketsObject();
  asked.length = 0;
  const error = await t.throwsAsync(probeSockets(placement), { instanceOf: EbpfUnavailableError });
  t.deepEqual(asked, ['bpftool']);
  t.notRegex(error!.message, /clang/);
});

test.after.always('kernel: ebpf every cgroup, namespace and bpffs the tests made is gone', (t) => {
  // ava runs this hook after every test and its teardowns have finished.
  t.deepEqual(leftovers(), [], 'cgroups and bpffs mounts');
  const namespaces = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
  for (const ns of createdNamespaces) t.false(namespaces.includes(ns), `${ns} was deleted`);
});
