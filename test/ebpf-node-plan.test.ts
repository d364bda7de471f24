import test from 'ava';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { BACKENDS } from '../dataplane/backends.js';
import { listNodePlan } from '../dataplane/ebpf/listing.js';
import { mostlyDifferent, planNode, planOverKernel, type NodePlan } from '../dataplane/ebpf/node-plan.js';
import { groupName } from '../dataplane/ebpf/plan.js';
import { StructureError } from '../dataplane/structure-error.js';
import { clusterState, nodeObject, serviceObject, sliceObject, testConfig } from './helpers/objects.js';

// The eBPF backend's pure parts: plans over what a kernel's maps hold, and the listing diff compares.
const ADDRESSES = ['192.168.56.11', 'fd00:56::11'];

function rules(...objects: unknown[]) {
  return computeNodeRules(clusterState(nodeObject('node-a'), nodeObject('node-b'), ...objects), 'node-a', testConfig);
}

const web = (endpoints: string[]) => [
  serviceObject({ name: 'web', type: 'NodePort', clusterIPs: ['10.96.0.20', 'fd00:96::20'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
  sliceObject('web', endpoints.map((ip) => ({ ip, node: 'node-a' as const }))),
  sliceObject('web', [{ ip: 'fd00:244:0:1::5', node: 'node-a' }], { name: 'web-v6', addressType: 'IPv6' }),
];

/** A plan as a kernel would hold it after writes: same content, other group ids (as read back, no names). */
function asKernelHolds(plan: NodePlan, shift: number): NodePlan {
  const id = (group: number) => (group ? group + shift : 0);
  return {
    sockets: {
      frontends: new Map([...plan.sockets.frontends].map(([key, [frontendKey, value]]) => [key, [frontendKey, { ...value, group: id(value.group) }]])),
      groups: new Map([...plan.sockets.groups].map(([group, endpoints]) => [id(group), endpoints])),
      ids: new Map(),
    },
    packets: {
      ...plan.packets,
      frontends: new Map([...plan.packets.frontends].map(([key, [frontendKey, value]]) => [key, [frontendKey, { ...value, group: id(value.group), localSourceGroup: id(value.localSourceGroup) }]])),
    },
  };
}

test('ebpf plan: both families of a Service port get groups of their own (they share the port\'s hash)', (t) => {
  const nodeRules = rules(...web(['10.244.1.5']));
  const [v4, v6] = nodeRules.families.map((family) => family.servicePorts[0]!);
  t.is(v4!.hash, v6!.hash);
  t.not(groupName(v4!, 'cluster'), groupName(v6!, 'cluster'));
  const plan = planNode(nodeRules, ADDRESSES);
  const endpointsAt = (ip: string) => plan.sockets.groups.get(plan.sockets.frontends.get(`${ip}|80|tcp`)![1].group)!.map((endpoint) => endpoint.ip);
  t.deepEqual(endpointsAt('10.96.0.20'), ['10.244.1.5']);
  t.deepEqual(endpointsAt('fd00:96::20'), ['fd00:244:0:1::5']);
});

test('ebpf plan: node ports are socket frontends at the node\'s addresses, leading to every endpoint', (t) => {
  const plan = planNode(rules(...web(['10.244.1.5', '10.244.2.5'])), ADDRESSES);
  const [, frontend] = plan.sockets.frontends.get('192.168.56.11|30080|tcp')!;
  t.is(frontend.verdict, 'serve');
  t.deepEqual(plan.sockets.groups.get(frontend.group)!.map((endpoint) => endpoint.ip), ['10.244.1.5', '10.244.2.5']);
  t.false(planNode(rules(...web(['10.244.1.5'])), []).sockets.frontends.has('192.168.56.11|30080|tcp'), 'no addresses known, no node-port socket frontends');
});

test('ebpf plan over a kernel: groups keep the kernel\'s ids, so maps that hold the rules need no write; a new group takes a free id', (t) => {
  const before = rules(...web(['10.244.1.5', '10.244.2.5']));
  const kernel = asKernelHolds(planNode(before, ADDRESSES), 40);
  const again = planOverKernel(planNode(before, ADDRESSES), kernel);
  t.deepEqual([...again.sockets.frontends], [...kernel.sockets.frontends], 'every frontend as the kernel holds it');
  t.deepEqual([...again.packets.frontends], [...kernel.packets.frontends]);
  t.deepEqual([...again.sockets.groups].sort(([a], [b]) => a - b), [...kernel.sockets.groups].sort(([a], [b]) => a - b));

  const grown = planOverKernel(planNode(rules(...web(['10.244.1.5', '10.244.2.5']), serviceObject({ name: 'api', clusterIPs: ['10.96.0.30'] }), sliceObject('api', [{ ip: '10.244.1.9', node: 'node-a' }])), ADDRESSES), kernel);
  const api = grown.sockets.frontends.get('10.96.0.30|80|tcp')![1].group;
  t.false(kernel.sockets.groups.has(api), `the new group's id ${api} is not one the kernel uses`);
  t.is(grown.sockets.frontends.get('10.96.0.20|80|tcp')![1].group, kernel.sockets.frontends.get('10.96.0.20|80|tcp')![1].group);
});

test('ebpf full sync: a replace only where most frontends and groups differ from the kernel\'s (a restart or a repair updates in place)', (t) => {
  const services = (count: number, net: number, endpoint = '10.244.1.5') => Array.from({ length: count }, (_, index) => [
    serviceObject({ name: `s${net}-${index}`, clusterIPs: [`10.96.${net}.${index + 1}`], ports: [{ name: 'http', port: 80 }] }),
    sliceObject(`s${net}-${index}`, [{ ip: endpoint, node: 'node-a' as const }]),
  ]).flat();
  const kernelOf = (...objects: unknown[]) => asKernelHolds(planNode(rules(...objects), ADDRESSES), 100);
  const over = (kernel: NodePlan, ...objects: unknown[]) => planOverKernel(planNode(rules(...objects), ADDRESSES), kernel);
  const empty = planNode(rules(), ADDRESSES);
  const held = kernelOf(...services(10, 1));
  t.false(mostlyDifferent(empty, over(empty, ...services(10, 1))), 'empty maps: nothing to replace');
  t.false(mostlyDifferent(held, over(held, ...services(10, 1))), 'the same rules');
  t.false(mostlyDifferent(held, over(held, ...services(8, 1), ...services(2, 2))), 'two Services of ten replaced');
  t.true(mostlyDifferent(held, over(held, ...services(10, 2))), 'every Service another');
  t.true(mostlyDifferent(held, over(held, ...services(10, 1, '10.244.1.6'))), 'every endpoint another: every group differs');
});

test('ebpf listing: the same maps under other group ids list the same; an endpoint that differs shows', (t) => {
  const nodeRules = rules(...web(['10.244.1.5', '10.244.2.5']));
  const plan = planNode(nodeRules, ADDRESSES);
  const options = { node: 'node-a', attachments: { cgroup: '/cg', hooks: ['connect4'], devices: ['eth1', 'eth0'] }, addressesKnown: true };
  const listing = listNodePlan(plan, options);
  t.is(listNodePlan(asKernelHolds(plan, 7), options), listing);
  t.regex(listing, /^ {2}10\.96\.0\.20:80\/tcp serve -> 10\.244\.1\.5:8080 w1, 10\.244\.2\.5:8080 w1$/m);
  t.regex(listing, /^ {2}tc ingress: eth0 eth1$/m, 'devices sorted');
  const other = listNodePlan(planNode(rules(...web(['10.244.1.5'])), ADDRESSES), options);
  t.not(other, listing);
  // A frontend whose group is gone is named as such, and the check on printed listings refuses it.
  const broken = asKernelHolds(plan, 0);
  broken.sockets.groups.clear();
  const text = listNodePlan(broken, options);
  t.regex(text, /10\.96\.0\.20:80\/tcp serve -> group \d+ \(missing\)/);
  t.throws(() => BACKENDS.ebpf.checkText!(text), { instanceOf: StructureError });
  t.notThrows(() => BACKENDS.ebpf.checkText!(listing));
});

test('ebpf check: a serving frontend pointing at no endpoints is a StructureError before anything is written', (t) => {
  const rendered = BACKENDS.ebpf.render(rules(...web(['10.244.1.5'])));
  t.notThrows(() => BACKENDS.ebpf.check(rendered));
  const [key, [frontendKey, value]] = [...rendered.ebpf!.plan.sockets.frontends][0]!;
  rendered.ebpf!.plan.sockets.frontends.set(key, [frontendKey, { ...value, verdict: 'serve', group: 999 }]);
  t.throws(() => BACKENDS.ebpf.check(rendered), { instanceOf: StructureError, message: /points at group 999/ });
});
