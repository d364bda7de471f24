// iptables rendering: NodeRules to one iptables-restore input per family, through the templates, kept
// in parts (each Service port's own chains and its lines in the chains the ports share) so that a sync
// after a change renders, checks and restores only the ports that changed.
import type { EndpointGroup, FamilyRules, FilterVerdict, NodePortAddresses, NodeRules, EndpointTarget, ServicePortRules } from '../../rules/node-rules.js';
import type { BackendOptions, RenderedRules, RenderUpdate } from '../backend.js';
import { ruleComment } from '../escape.js';
import { spliceParts } from '../port-parts.js';
import { endpointDestination, externalChain, externalTarget, groups, internalTarget, masqueradeRule, type ChainNames } from '../render-shapes.js';
import { templates } from '../templates.js';
import { endpointHash } from '../../rules/names.js';
import { HEAD_CHAINS, HOOK_JUMPS, MARK_CHAIN, MASQUERADE_RULES, NODEPORTS_CHAIN, type IptablesTable } from './head.js';

export type { IptablesTable } from './head.js';

/** The chains every port writes lines into, with their table. */
export const SHARED_CHAINS = { 'FERRY-FIREWALL': 'mangle', 'FERRY-NO-ENDPOINTS': 'filter', 'FERRY-SERVICES': 'nat', 'FERRY-NODEPORTS': 'nat' } as const;
export type SharedChain = keyof typeof SHARED_CHAINS;

/** One Service port's share of its family's rules, as the templates print it. */
export interface IptablesPortPart {
  /** Its own chains by table (the firewall chain in mangle, the rest in nat) and their rules. */
  own: Record<'mangle' | 'nat', { chains: string[]; rules: string }>;
  /** Its lines in each shared chain. */
  shared: Record<SharedChain, string>;
  /** The chains its rules jump to, by table, from the objects the templates print them from. */
  references: Record<IptablesTable, string[]>;
  /** Its rule lines, for the rules metric. */
  rules: number;
}

/** A family's rules: what the table prints beside the ports (`head`), and one part per port in the order of servicePorts. */
export interface IptablesFamilyRendering {
  rules: FamilyRules;
  head: IptablesHead;
  ports: readonly IptablesPortPart[];
  /** The ports' rule lines, summed. */
  portRules: number;
}

/** What an iptables rendering is made of; `update`: rendered from the one with id `from`, these ports changed since. */
export interface IptablesRendering {
  id: symbol;
  node: string;
  families: IptablesFamilyRendering[];
  update?: { from: symbol; changed: ReadonlySet<string> };
}

/** The iptables parts of a rendering. */
export function iptablesOf(rendered: RenderedRules): IptablesRendering {
  if (!rendered.iptables) throw new Error('ferry iptables: rules rendered by another backend');
  return rendered.iptables;
}

/**
 * Renders node rules as iptables-restore input, one per family; pure: the same rules give the same text.
 * With `update` (the rendering before and the ports changed since) only the changed ports are rendered.
 */
export function renderIptables(rules: NodeRules, _options?: BackendOptions, update?: RenderUpdate): RenderedRules {
  const previous = update?.previous.iptables;
  // A port's part depends on the port and on its family's local CIDR and node-port addresses.
  const reusable = (before: IptablesFamilyRendering | undefined, family: FamilyRules) => before?.rules.family === family.family
    && before.rules.localCIDR === family.localCIDR && JSON.stringify(before.rules.nodePortAddresses) === JSON.stringify(family.nodePortAddresses);
  const changed = update?.changed;
  const incremental = previous && changed !== undefined && changed !== 'all' && rules.families.every((family, index) => reusable(previous.families[index], family));
  const families = rules.families.map((family, index) => {
    const head = headOf(family, rules.masqueradeMark);
    if (!incremental) return familyOf(family, head, family.servicePorts.map((port) => iptablesPort(port, family, head)));
    const before = previous.families[index]!;
    const { parts, gone, made } = spliceParts(before.rules, before.ports, family, changed, (port) => iptablesPort(port, family, head));
    const portRules = before.portRules - gone.reduce((sum, part) => sum + part.rules, 0) + made.reduce((sum, part) => sum + part.rules, 0);
    return { rules: family, head, ports: parts, portRules };
  });
  const iptables: IptablesRendering = { id: Symbol('iptables rendering'), node: rules.node, families, ...(incremental ? { update: { from: previous.id, changed } } : {}) };
  return {
    backend: 'iptables',
    // Printed whole only when something reads it as one text (a full apply, a diff, `ferry render`).
    texts: families.map((family) => {
      let text: string | undefined;
      return { family: family.rules.family, get text() { return (text ??= familyText(rules.node, family)); } };
    }),
    iptables,
  };
}

function familyOf(family: FamilyRules, head: IptablesHead, ports: IptablesPortPart[]): IptablesFamilyRendering {
  return { rules: family, head, ports, portRules: ports.reduce((sum, part) => sum + part.rules, 0) };
}

/** A family's restore input: the table template over the head and every port's pieces in port order. */
export function familyText(node: string, family: IptablesFamilyRendering): string {
  const { ports } = family;
  const joined = (piece: (part: IptablesPortPart) => string) => ports.map(piece).join('');
  return templates.iptables({
    node,
    tables: [{
      ...family.head,
      mangleChains: ports.flatMap((part) => part.own.mangle.chains),
      natChains: ports.flatMap((part) => part.own.nat.chains),
      firewallEntries: joined((part) => part.shared['FERRY-FIREWALL']),
      firewallChains: joined((part) => part.own.mangle.rules),
      noEndpoints: joined((part) => part.shared['FERRY-NO-ENDPOINTS']),
      services: joined((part) => part.shared['FERRY-SERVICES']),
      nodePorts: joined((part) => part.shared['FERRY-NODEPORTS']),
      chains: joined((part) => part.own.nat.rules),
    }],
  });
}

/** The whole of one shared chain's rules, as the table prints them (FERRY-SERVICES ends with the jump to node ports). */
export function sharedChainRules(family: IptablesFamilyRendering, chain: SharedChain): string {
  const lines = family.ports.map((part) => part.shared[chain]).join('');
  return chain === 'FERRY-SERVICES' ? lines + templates.iptablesServicesTail(family.head) : lines;
}

/** The rules of the table with no port, counted on its objects: the hooks, the masquerading, the cluster IPs and service CIDRs, the node ports' jump. */
export function headRules(family: IptablesFamilyRendering): number {
  const { hooks, clusterIPs, serviceCIDRs, nodePortMatches } = family.head;
  return Object.values(hooks).reduce((sum, list) => sum + list.length, 0) + MASQUERADE_RULES + clusterIPs.length + serviceCIDRs.length + nodePortMatches.length;
}

/** FERRY-CLUSTER-IPS's rules. */
export const clusterIPRules = (family: IptablesFamilyRendering) => templates.iptablesClusterIPs(family.head);

const iptablesNames: ChainNames = {
  group: (port, kind) => `FERRY-${kind === 'cluster' ? 'SVC' : 'SVL'}-${port.hash}`,
  external: (port) => `FERRY-EXT-${port.hash}`,
  firewall: (port) => `FERRY-FW-${port.hash}`,
};

/** An endpoint's own chain (every iptables endpoint has one: the DNAT, and under affinity the recording of the client). */
const endpointChain = (port: ServicePortRules, endpoint: EndpointTarget) => `FERRY-SEP-${endpointHash(port, endpoint)}`;

type IptablesHead = ReturnType<typeof headOf>;

/** What the table template prints from the family as a whole. */
function headOf(family: FamilyRules, mark: string) {
  const ipv6 = family.family === 'IPv6';
  const host = (ip: string) => `${ip}/${ipv6 ? 128 : 32}`;
  return {
    family: family.family,
    restoreCommand: ipv6 ? 'ip6tables-restore' : 'iptables-restore',
    mark,
    reject: ipv6 ? 'icmp6-port-unreachable' : 'icmp-port-unreachable',
    hostMask: ipv6 ? 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' : '255.255.255.255',
    clusterIPs: family.clusterIPs.map(host),
    serviceCIDRs: family.serviceCIDRs,
    nodePortMatches: iptablesNodePortMatches(family.nodePortAddresses, host, ipv6),
    declared: HEAD_CHAINS,
    hooks: HOOK_JUMPS,
    nodePortsChain: NODEPORTS_CHAIN,
  };
}

/** One port's part: its shape printed by the port templates. */
function iptablesPort(port: ServicePortRules, family: FamilyRules, head: IptablesHead): IptablesPortPart {
  const shape = portShape(port, family, head);
  const print = templates.iptablesPort;
  const own = {
    mangle: { chains: shape.firewallChains.map((chain) => chain.name), rules: print.firewallChains(shape) },
    nat: { chains: [...shape.groupChains, ...shape.externalChains, ...shape.endpointChains].map((chain) => chain.name), rules: print.chains(shape) },
  };
  const shared = {
    'FERRY-FIREWALL': print.firewallEntries(shape), 'FERRY-NO-ENDPOINTS': print.noEndpoints(shape),
    'FERRY-SERVICES': print.services(shape), 'FERRY-NODEPORTS': print.nodePorts(shape),
  };
  // Every line the templates print for a port is one rule.
  let rules = 0;
  for (const text of [own.mangle.rules, own.nat.rules, ...Object.values(shared)]) for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n', at + 1)) rules += 1;
  return { own, shared, references: shapeReferences(shape), rules };
}

type PortShape = ReturnType<typeof portShape>;

/** The chains a port's rules jump to, by table, one per rule that jumps: the targets its objects name (a verdict is no chain). */
function shapeReferences(shape: PortShape): Record<IptablesTable, string[]> {
  return {
    mangle: shape.firewallChains.flatMap((chain) => chain.destinations.map(() => chain.name)),
    filter: [],
    nat: [
      ...shape.serviceEntries.map((entry) => entry.target),
      ...shape.nodePortEntries.map((entry) => entry.target),
      ...shape.groupChains.flatMap((chain) => [
        ...(chain.masquerade ? [chain.markChain] : []),
        ...chain.affinity.map((lookup) => lookup.chain),
        ...chain.choices.map((choice) => choice.chain),
      ]),
      ...shape.externalChains.flatMap((chain) => (chain.local
        ? [...(chain.podCIDR ? [chain.clusterChain] : []), chain.markChain, chain.clusterChain, ...(chain.localChain ? [chain.localChain] : [])]
        : [chain.markChain, chain.clusterChain])),
      ...shape.endpointChains.map((chain) => chain.markChain),
    ],
  };
}

/** What the port templates print a port from. */
function portShape(port: ServicePortRules, family: FamilyRules, head: IptablesHead) {
  const ipv6 = family.family === 'IPv6';
  const host = (ip: string) => `${ip}/${ipv6 ? 128 : 32}`;
  const names = iptablesNames;
  const target = (filter: FilterVerdict) => (filter === 'reject' ? `REJECT --reject-with ${head.reject}` : 'DROP');
  type Entry = { destination: string; protocol: string; port: number; target: string; comment: string };
  type NodePortEntry = Omit<Entry, 'destination'>;
  const serviceEntries: Entry[] = [];
  const nodePortEntries: NodePortEntry[] = [];
  const noEndpointServices: Entry[] = [];
  const noEndpointNodePorts: NodePortEntry[] = [];
  const entry = (destination: string, chain: string, comment: string): Entry =>
    ({ destination: host(destination), protocol: port.protocol, port: port.port, target: chain, comment: ruleComment(comment) });
  const internal = internalTarget(port, names);
  if ('chain' in internal) serviceEntries.push(entry(port.clusterIP, internal.chain, `${port.id} cluster IP`));
  else noEndpointServices.push(entry(port.clusterIP, target(internal.verdict), noEndpointsComment(port, internal.verdict)));
  const external = externalTarget(port, names);
  const externalVerdict = port.external?.verdict;
  for (const ip of port.externalIPs) {
    if (external) serviceEntries.push(entry(ip, external, `${port.id} external IP`));
    if (externalVerdict) noEndpointServices.push(entry(ip, target(externalVerdict), noEndpointsComment(port, externalVerdict)));
  }
  if (port.nodePort > 0) {
    const nodePort = (chain: string, comment: string): NodePortEntry => ({ protocol: port.protocol, port: port.nodePort, target: chain, comment: ruleComment(comment) });
    if (external) nodePortEntries.push(nodePort(external, `${port.id} node port`));
    if (externalVerdict) noEndpointNodePorts.push(nodePort(target(externalVerdict), noEndpointsComment(port, externalVerdict)));
  }
  return {
    hostMask: head.hostMask,
    nodePortMatches: head.nodePortMatches,
    serviceEntries,
    nodePortEntries,
    noEndpointServices,
    noEndpointNodePorts,
    firewallChains: port.firewall ? [{
      name: names.firewall(port),
      destinations: port.firewall.loadBalancerIPs.map(host),
      protocol: port.protocol,
      port: port.port,
      allowed: port.firewall.sourceRanges,
      comment: ruleComment(`${port.id} loadBalancerSourceRanges`),
    }] : [],
    groupChains: groups(port).map(({ kind, group }) => ({
      name: names.group(port, kind),
      comment: ruleComment(kind === 'cluster' ? port.id : `${port.id} local endpoints`),
      masquerade: masqueradeRule(port, group, family.localCIDR, host),
      markChain: MARK_CHAIN,
      ...groupDispatch(port, group),
    })),
    externalChains: external ? [{ ...externalChain(port, names), podCIDR: family.localCIDR ?? '', markChain: MARK_CHAIN }] : [],
    endpointChains: endpointChains(port, host),
  };
}

/** A group chain's jumps to its endpoints' chains: affinity's first, then the weighted choice; each chain named once. */
function groupDispatch(port: ServicePortRules, group: EndpointGroup) {
  const chains = group.endpoints.map((endpoint) => endpointChain(port, endpoint));
  return {
    affinity: port.affinitySeconds > 0 ? chains.map((chain) => ({ chain, seconds: port.affinitySeconds })) : [],
    choices: cumulativeProbabilities(group.endpoints).map(({ probability }, index) => ({ chain: chains[index]!, probability })),
  };
}

/** Each endpoint chain of the port once, though its cluster and local groups may both lead to it. */
function endpointChains(port: ServicePortRules, source: (ip: string) => string) {
  const chains = new Map<string, EndpointTarget>();
  for (const group of [port.cluster, port.local]) {
    for (const endpoint of group?.endpoints ?? []) chains.set(endpointChain(port, endpoint), endpoint);
  }
  return [...chains.entries()].map(([name, endpoint]) => ({
    name,
    source: source(endpoint.ip),
    markChain: MARK_CHAIN,
    protocol: port.protocol,
    destination: endpointDestination(endpoint),
    comment: ruleComment(`${port.id} -> ${endpointDestination(endpoint)}`),
    affinitySeconds: port.affinitySeconds,
  }));
}

function noEndpointsComment(port: ServicePortRules, verdict: FilterVerdict): string {
  return `${port.id} ${verdict === 'reject' ? 'has no endpoints' : 'has no local endpoints'}`;
}

/**
 * iptables walks the rules in order, so endpoint i gets the probability w_i / (w_i + ... + w_n) of
 * what is left; the last one takes the rest unconditionally. Written as the kernel keeps it and
 * iptables-save prints it (xt_statistic stores round(p · 2^31); eleven decimals of that back): a chain
 * ferry renders then reads back identical, so a restore planned from iptables-save leaves unchanged
 * chains alone (with kube-proxy's ten decimals every weighted chain looked changed and was rewritten
 * at every full sync).
 */
export function cumulativeProbabilities(endpoints: EndpointTarget[]): { endpoint: EndpointTarget; probability?: string }[] {
  let remaining = endpoints.reduce((sum, endpoint) => sum + endpoint.weight, 0);
  return endpoints.map((endpoint, index) => {
    const probability = index === endpoints.length - 1 ? undefined : asKernelKeeps(endpoint.weight / remaining);
    remaining -= endpoint.weight;
    return { endpoint, probability };
  });
}

const STATISTIC_SCALE = 0x80000000;
const asKernelKeeps = (probability: number) => (Math.round(probability * STATISTIC_SCALE) / STATISTIC_SCALE).toFixed(11);

/**
 * Where node ports answer, as an address match and the match modules after it: iptables-save prints
 * `-p` between the two, and a rule rendered in that order reads back identical.
 */
function iptablesNodePortMatches(addresses: NodePortAddresses, host: (ip: string) => string, ipv6: boolean): { address: string; modules: string }[] {
  switch (addresses.kind) {
    case 'addresses':
      return addresses.addresses.map((ip) => ({ address: `-d ${host(ip)}`, modules: '' }));
    case 'cidrs':
      return addresses.cidrs.map((cidr) => ({ address: `-d ${cidr}`, modules: '-m addrtype --dst-type LOCAL' }));
    case 'all':
      return [{ address: `! -d ${ipv6 ? '::1/128' : '127.0.0.0/8'}`, modules: '-m addrtype --dst-type LOCAL' }];
  }
}
