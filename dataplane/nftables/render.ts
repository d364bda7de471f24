// nftables rendering: NodeRules to one nft -f script for both families, through the templates, kept in
// parts (each table's head, and each Service port's elements and chains) so that a sync after a change
// renders, checks, stamps and writes only the ports that changed.
import { hash } from 'node:crypto';
import { endpointHash, endpointKey } from '../../rules/names.js';
import type { FamilyRules, FilterVerdict, NodePortAddresses, NodeRules, EndpointTarget, ServicePortRules } from '../../rules/node-rules.js';
import { addressSortKey } from '../../controlplane/model/ip.js';
import { compareText } from '../../rules/port-changes.js';
import { spliceParts } from '../port-parts.js';
import type { RenderedRules, RenderUpdate } from '../backend.js';
import { nftIdentifier, ruleComment } from '../escape.js';
import {
  endpointDestination, externalChain, externalTarget, groups, internalTarget, masqueradeRule, type ChainNames,
} from '../render-shapes.js';
import { templates } from '../templates.js';
import { Counts } from './counts.js';
import { headChains, headReferences, MARK_CHAIN, REJECT_CHAIN, type HeadChain, type NodePortMatch } from './head.js';

/** One Service port's share of its family's table: its map and set elements, its chains, their digest. */
export interface NftPortPart {
  /** The port's cluster IP: an element of cluster-ips while any port has it. */
  clusterIP: string;
  /** The elements it adds to each of the table's verdict maps (PORT_COLLECTIONS), by name. */
  verdicts: ReadonlyMap<string, readonly NftVerdictElement[]>;
  /** Its endpoints on this node, each paired with itself: its share of hairpin-endpoints. */
  hairpin: readonly string[];
  /** Its dynamic sets for session affinity. */
  affinitySets: { name: string; seconds: number }[];
  /** The chains it declares, by name, and their text as the templates print them. */
  chainNames: string[];
  chains: string;
  /** What its chains and elements refer to outside themselves or inside: chains, and sets or maps. */
  references: { chains: readonly string[]; sets: readonly string[] };
  /** Rule lines in its chains, and lines in total (rules and elements), for the stamp and the rules metric. */
  rules: number;
  lines: number;
  /** sha256 of everything above, as a number: a table's digest is the sum over its parts (see shell.ts). */
  digest: bigint;
}

/** An element of a verdict map: its key (as nft prints it), and the chain it goes to or a drop. */
export interface NftVerdictElement {
  key: string;
  goto?: string;
  drop?: true;
}

/** One nftables table: the part every sync shares (head) and one part per Service port. */
export interface NftTableRendering {
  family: 'ip' | 'ip6';
  rules: FamilyRules;
  /** The masquerade mark the head's chains set. */
  mark: string;
  /** The table without the ports' chains, elements and affinity sets; of constant size. */
  head: string;
  /** The head's chains as objects (the check, the reassert and the rules metric read them). */
  headChains: HeadChain[];
  /** What the head's rules refer to. */
  headReferences: { chains: string[]; sets: string[] };
  /** Rule lines in the head's chains. */
  headRules: number;
  /** The collections the head declares, with the elements that belong to the table, not to a port. */
  collections: NftCollection[];
  /** In the order of rules.servicePorts. */
  ports: readonly NftPortPart[];
  /** How many ports put each element into hairpin-endpoints (two ports of a Service share endpoints). */
  hairpin: Counts;
  /** Over the ports: the sum of their digests (mod 2^256), their rule lines and all their lines. */
  totals: { digest: bigint; rules: number; lines: number };
}

/**
 * What an nftables rendering is made of. `update` is set when it was rendered from a previous one: that
 * one's id (not the rendering itself, so that renderings do not keep a chain of their predecessors
 * alive) and the ports changed since.
 */
export interface NftRendering {
  id: symbol;
  node: string;
  tables: NftTableRendering[];
  update?: { from: symbol; changed: ReadonlySet<string> };
}

/** The maps and sets whose elements come from the ports (hairpin-endpoints and cluster-ips are counted apart). */
export const PORT_COLLECTIONS = ['service-ips', 'service-nodeports', 'no-endpoint-services', 'no-endpoint-nodeports', 'firewall-ips'] as const;

/** The nftables parts of a rendering. */
export function nftOf(rendered: RenderedRules): NftRendering {
  if (!rendered.nft) throw new Error('ferry nftables: rules rendered by another backend');
  return rendered.nft;
}

/**
 * Renders node rules as nftables; pure: the same rules give the same text. With `update` (the rendering
 * of the rules before, and the ports that changed since) only the changed ports are rendered again.
 */
export function renderNftables(rules: NodeRules, update?: RenderUpdate): RenderedRules {
  const previous = update?.previous.nft;
  // A port's part depends on the port and on its family's local CIDR: when that changed, everything is rendered anew.
  const incremental = previous && update.changed !== 'all'
    && rules.families.every((family, index) => previous.tables[index]?.rules.family === family.family && previous.tables[index].rules.localCIDR === family.localCIDR)
    ? { previous, changed: update.changed } : undefined;
  const tables = rules.families.map((family, index) => (incremental
    ? updateTable(incremental.previous.tables[index]!, family, rules.masqueradeMark, incremental.changed)
    : tableOf(family, rules.masqueradeMark, family.servicePorts.map((port) => nftServicePort(port, family)))));
  return renderingOf(rules.node, tables, incremental && { from: incremental.previous.id, changed: incremental.changed });
}

/**
 * renderNftables without an update, printed while it renders: `pieces` is the script's text in order,
 * each port rendered just before its chains are printed, so that nft parses the start of the script
 * while ferry renders the rest (a first load: nft takes a second to parse 10,000 Services). `rendered()`
 * is the rendering once `pieces` has been read to its end; the text is the one renderNftables prints.
 */
export function renderNftablesStreaming(rules: NodeRules): { pieces: Iterable<string>; rendered(): RenderedRules } {
  const tables: NftTableRendering[] = [];
  const printing = rules.families.map((family): TablePrint => {
    const view = tableShape(family, rules.masqueradeMark).head;
    const ports: NftPortPart[] = [];
    return {
      open: templates.nftTableOpen({ ...view, replace: true }),
      chains: (function* render() {
        for (const port of family.servicePorts) {
          const part = nftServicePort(port, family);
          ports.push(part);
          yield part.chains;
        }
      })(),
      close: () => {
        const table = tableOf(family, rules.masqueradeMark, ports);
        tables.push(table);
        return closing(table);
      },
    };
  });
  let rendered: RenderedRules | undefined;
  return {
    pieces: scriptPieces(rules.node, printing),
    rendered: () => {
      if (tables.length !== rules.families.length) throw new Error('ferry nftables: the streamed script was not read to its end');
      // One rendering (one id, which a later update names as the one it starts from), however often asked.
      return (rendered ??= renderingOf(rules.node, tables));
    },
  };
}

function renderingOf(node: string, tables: NftTableRendering[], update?: NftRendering['update']): RenderedRules {
  const nft: NftRendering = { id: Symbol('nftables rendering'), node, tables, ...(update ? { update } : {}) };
  // The whole script is only joined when something reads it as one text (`ferry render`, a diff): a
  // sync works from the parts, and a full apply streams scriptText's pieces.
  let text: string | undefined;
  return {
    backend: 'nftables',
    texts: [{ family: 'both', get text() { return (text ??= [...scriptText(nft)].join('')); } }],
    nft,
  };
}

/** The script that replaces ferry's tables with these, in pieces (at 10,000 Services it is 14 MB). */
export function scriptText(nft: NftRendering): Iterable<string> {
  return scriptPieces(nft.node, nft.tables.map((table) => printed(table, true)));
}

/**
 * A table's text in the order it is printed: its opening (the commands that replace it, its fixed
 * chains), each port's chains, then its sets and maps, whose elements come from every port (nft
 * creates a table's chains and sets before any rule, so rules may name sets printed after them).
 */
interface TablePrint {
  open: string;
  chains: Iterable<string>;
  close(): string;
}

function* scriptPieces(node: string, tables: Iterable<TablePrint>): Generator<string> {
  yield templates.nftScriptHeader({ node });
  for (const table of tables) yield* tablePieces(table);
}

function* tablePieces(table: TablePrint): Generator<string> {
  yield table.open;
  yield* table.chains;
  yield table.close();
}

function printed(table: NftTableRendering, replace: boolean): TablePrint {
  return {
    open: templates.nftTableOpen({ ...tableShape(table.rules, table.mark).head, replace }),
    chains: table.ports.map((part) => part.chains),
    close: () => closing(table),
  };
}

function closing(table: NftTableRendering): string {
  return templates.nftTableClose({
    ...tableShape(table.rules, table.mark).head,
    collections: table.collections.map((collection) => ({ ...collection, elements: tableElements(table, collection) })),
    affinitySets: table.ports.flatMap((part) => part.affinitySets),
  });
}

/** A whole table as the templates print it, in pieces; `replace`: preceded by the commands that drop the old one. */
export function tableText(table: NftTableRendering, replace: boolean): Iterable<string> {
  return tablePieces(printed(table, replace));
}

/** Every element of a collection: the table's own, or the ports' in port order. */
function tableElements(table: NftTableRendering, collection: NftCollection): readonly string[] | NftVerdictElement[] {
  // In address order, as the other sets print (each pair is one address twice).
  if (collection.name === 'hairpin-endpoints') {
    return [...table.hairpin.keys()].map((pair) => ({ pair, key: addressSortKey(pair.slice(0, pair.indexOf(' '))) }))
      .sort((a, b) => compareText(a.key, b.key)).map(({ pair }) => pair);
  }
  if (!collection.verdicts) return collection.elements;
  return table.ports.flatMap((part) => part.verdicts.get(collection.name) ?? []);
}

const nftNames: ChainNames = {
  group: (port, kind) => `${kind === 'cluster' ? 'svc' : 'svl'}-${port.hash}-${nftIdentifier(port.id.replace(':', '/'))}`,
  external: (port) => `ext-${port.hash}-${nftIdentifier(port.id.replace(':', '/'))}`,
  firewall: (port) => `fw-${port.hash}-${nftIdentifier(port.id.replace(':', '/'))}`,
};

/** The head of a family's table and its collections, from the family-wide rules. */
function tableShape(family: FamilyRules, mark: string) {
  const ipv6 = family.family === 'IPv6';
  const address: 'ip' | 'ip6' = ipv6 ? 'ip6' : 'ip';
  const addressType = ipv6 ? 'ipv6_addr' : 'ipv4_addr';
  const addressPortKey = `${addressType} . inet_proto . inet_service`;
  const nodePortIPs = family.nodePortAddresses.kind === 'addresses' ? family.nodePortAddresses.addresses : [];
  const set = (name: string, type: string, elements: readonly string[], comment = ''): NftCollection => ({ kind: 'set', name, type, elements, comment, verdicts: false });
  // The verdict maps hold only the ports' elements.
  const map = (name: (typeof PORT_COLLECTIONS)[number], key: string): NftCollection => ({ kind: 'map', name, type: `${key} : verdict`, elements: [], comment: '', verdicts: true });
  const collections: NftCollection[] = [
    set('cluster-ips', addressType, family.clusterIPs),
    set('hairpin-endpoints', `${addressType} . ${addressType}`, [], 'Hairpin: after DNAT, a connection whose source is the endpoint it was sent to must be masqueraded.'),
    ...(nodePortIPs.length > 0 ? [set('nodeport-ips', addressType, nodePortIPs)] : []),
    map('service-ips', addressPortKey),
    map('service-nodeports', 'inet_proto . inet_service'),
    map('no-endpoint-services', addressPortKey),
    map('no-endpoint-nodeports', 'inet_proto . inet_service'),
    map('firewall-ips', addressPortKey),
  ];
  const nodePortMatch = nftNodePortMatch(family.nodePortAddresses, address);
  const serviceCIDRs = family.serviceCIDRs.join(', ');
  return {
    collections,
    head: { family: address, address, addressType, mark, nodePortMatch, chains: headChains({ mark, nodePortMatch, serviceCIDRs }) },
  };
}

/** A family's table from its ports' parts (in the order of servicePorts). */
function tableOf(family: FamilyRules, mark: string, ports: NftPortPart[]): NftTableRendering {
  return {
    ...headOf(family, mark), rules: family, ports, totals: ports.reduce((totals, part) => addPart(totals, part), NO_TOTALS),
    hairpin: Counts.of(ports.flatMap((part) => part.hairpin)),
  };
}

const NO_TOTALS = { digest: 0n, rules: 0, lines: 0 };
const DIGEST_MOD = 2n ** 256n;

function addPart(totals: NftTableRendering['totals'], part: NftPortPart, sign: 1 | -1 = 1): NftTableRendering['totals'] {
  return {
    digest: (((totals.digest + BigInt(sign) * part.digest) % DIGEST_MOD) + DIGEST_MOD) % DIGEST_MOD,
    rules: totals.rules + sign * part.rules,
    lines: totals.lines + sign * part.lines,
  };
}

function headOf(family: FamilyRules, mark: string): Pick<NftTableRendering, 'family' | 'mark' | 'head' | 'headChains' | 'headReferences' | 'headRules' | 'collections'> {
  const { collections, head: view } = tableShape(family, mark);
  const head = templates.nftTableOpen({ ...view, replace: true }) + templates.nftTableClose({ ...view, collections: collections.map((collection) => ({ ...collection, elements: [] })), affinitySets: [] });
  const headRules = view.chains.reduce((sum, chain) => sum + chain.rules.length, 0);
  return { family: view.family, mark, collections, head, headChains: view.chains, headReferences: headReferences(view.chains, view.nodePortMatch), headRules };
}

/** A table after a change: the parts of the changed ports rendered again (spliceParts), the rest taken over. */
function updateTable(before: NftTableRendering, family: FamilyRules, mark: string, changed: ReadonlySet<string>): NftTableRendering {
  const { parts: ports, gone, made } = spliceParts(before.rules, before.ports, family, changed, (port) => nftServicePort(port, family));
  let totals = before.totals;
  const hairpin: [string, number][] = [];
  for (const [list, delta] of [[gone, -1], [made, 1]] as const) {
    for (const part of list) {
      totals = addPart(totals, part, delta);
      for (const pair of part.hairpin) hairpin.push([pair, delta]);
    }
  }
  return { ...headOf(family, mark), rules: family, ports, hairpin: before.hairpin.with(hairpin), totals };
}

/**
 * A named set or map of a table, as nft-collection.hbs prints it: its own elements (a set's), or with
 * `verdicts` a verdict map whose elements are the ports'.
 */
interface NftCollection {
  kind: 'set' | 'map';
  name: string;
  type: string;
  elements: readonly string[];
  comment: string;
  verdicts: boolean;
}

function nftServicePort(port: ServicePortRules, family: FamilyRules): NftPortPart {
  const names = nftNames;
  const verdict = (key: string, filter: FilterVerdict): NftVerdictElement => (filter === 'reject' ? { key, goto: REJECT_CHAIN } : { key, drop: true });
  const key = (ip: string) => `${ip} . ${port.protocol} . ${port.port}`;
  const verdicts = new Map<string, NftVerdictElement[]>(PORT_COLLECTIONS.map((name) => [name, []]));
  const add = (collection: (typeof PORT_COLLECTIONS)[number], element: NftVerdictElement) => verdicts.get(collection)!.push(element);
  // `ip . ip` for every endpoint on this node: no other endpoint can be a hairpin's source here, and
  // the kernel dumps a set in time growing with the square of its elements (`ferry diff` reads it).
  const hairpin = uniqueEndpoints(port).filter((endpoint) => endpoint.onNode).map((endpoint) => `${endpoint.ip} . ${endpoint.ip}`);
  const internal = internalTarget(port, names);
  if ('chain' in internal) add('service-ips', { key: key(port.clusterIP), goto: internal.chain });
  else add('no-endpoint-services', verdict(key(port.clusterIP), internal.verdict));
  const external = externalTarget(port, names);
  const externalVerdict = port.external?.verdict;
  for (const ip of port.externalIPs) {
    if (external) add('service-ips', { key: key(ip), goto: external });
    if (externalVerdict) add('no-endpoint-services', verdict(key(ip), externalVerdict));
  }
  if (port.nodePort > 0) {
    const nodePortKey = `${port.protocol} . ${port.nodePort}`;
    if (external) add('service-nodeports', { key: nodePortKey, goto: external });
    if (externalVerdict) add('no-endpoint-nodeports', verdict(nodePortKey, externalVerdict));
  }
  for (const ip of port.firewall?.loadBalancerIPs ?? []) add('firewall-ips', { key: key(ip), goto: names.firewall(port) });
  // Only affinity needs a chain per endpoint (to record the client); the rest DNAT from the group chain.
  const affinityEndpoints = port.affinitySeconds > 0 ? uniqueEndpoints(port).map((endpoint) => ({ endpoint, ...affinityNames(port, endpoint) })) : [];
  const affinitySets = affinityEndpoints.map(({ affinitySet }) => ({ name: affinitySet, seconds: port.affinitySeconds }));
  const shape = chainShapes(port, family, external, affinityEndpoints);
  const chains = templates.nftServicePort(shape);
  const chainNames = [...shape.groupChains, ...shape.externalChains, ...shape.firewallChains, ...shape.endpointChains].map((chain) => chain.name);
  const elements = [...verdicts.values()].flat();
  const fromShape = shapeReferences(shape);
  const references = { chains: [...fromShape.chains, ...elements.flatMap((element) => (element.goto ? [element.goto] : []))], sets: fromShape.sets };
  // One string hashed in one call: a Hash object fed piece by piece cost more than the hashing.
  let hashed = `${port.id}\0${hairpin.join('\n')}`;
  for (const [name, list] of verdicts) hashed += `\0${name}\0${list.map((element) => `${element.key}\0${element.goto ?? 'drop'}`).join('\n')}`;
  for (const set of affinitySets) hashed += `\0${set.name} ${set.seconds}`;
  const digest = BigInt(`0x${hash('sha256', `${hashed}\0${chains}`, 'hex')}`);
  const rules = ruleCount(shape);
  return { clusterIP: port.clusterIP, verdicts, hairpin, affinitySets, chainNames, chains, references, rules, lines: rules + elements.length + hairpin.length, digest };
}

type PortShape = ReturnType<typeof chainShapes>;

/** What a port's chains refer to, from the objects the template prints them from. */
function shapeReferences(shape: PortShape): { chains: string[]; sets: string[] } {
  return {
    chains: [
      ...shape.groupChains.flatMap((chain) => [
        ...(chain.masquerade ? [chain.markChain] : []),
        ...chain.affinity.map((lookup) => lookup.chain),
        ...chain.choices.flatMap((choice) => (choice.chain ? [choice.chain] : [])),
      ]),
      ...shape.externalChains.flatMap((chain) => [chain.markChain, chain.clusterChain, ...(chain.localChain ? [chain.localChain] : [])]),
    ],
    sets: [
      ...shape.groupChains.flatMap((chain) => chain.affinity.map((lookup) => lookup.set)),
      ...shape.endpointChains.map((chain) => chain.affinitySet),
    ],
  };
}

/**
 * The rules a port's chains hold, from the objects: one per line the templates print for each
 * (a test holds the two to each other for every scenario).
 */
function ruleCount(shape: PortShape): number {
  let rules = 0;
  for (const chain of shape.groupChains) rules += (chain.masquerade ? 1 : 0) + chain.affinity.length + chain.choices.length;
  for (const chain of shape.externalChains) rules += chain.local ? (chain.podCIDR ? 1 : 0) + 2 + (chain.localChain ? 1 : 0) : 2;
  for (const chain of shape.firewallChains) rules += chain.allowed.length + 1;
  return rules + 2 * shape.endpointChains.length;
}

/** What the service-port template prints a port's chains from. */
function chainShapes(port: ServicePortRules, family: FamilyRules, external: string | undefined, affinityEndpoints: Array<{ endpoint: EndpointTarget; name: string; affinitySet: string }>) {
  const names = nftNames;
  return {
    address: family.family === 'IPv6' ? 'ip6' : 'ip',
    groupChains: groups(port).map(({ kind, group }) => ({
      name: names.group(port, kind),
      masquerade: masqueradeRule(port, group, family.localCIDR, (ip) => ip),
      markChain: MARK_CHAIN,
      protocol: port.protocol,
      ...nftDispatch(port, group.endpoints),
    })),
    externalChains: external ? [{ ...externalChain(port, names), podCIDR: family.localCIDR ?? '', markChain: MARK_CHAIN }] : [],
    firewallChains: port.firewall
      ? [{ name: names.firewall(port), allowed: port.firewall.sourceRanges, comment: ruleComment(`${port.id} loadBalancerSourceRanges`) }]
      : [],
    endpointChains: affinityEndpoints.map(({ endpoint, name, affinitySet }) => ({
      name,
      affinitySet,
      protocol: port.protocol,
      destination: endpointDestination(endpoint),
      comment: ruleComment(`${port.id} -> ${endpointDestination(endpoint)}`),
    })),
  };
}

/**
 * How a group chain picks an endpoint: one rule per endpoint, each taking its weight's share of what
 * the rules before it left (as iptables' statistic rules do), the last unconditional. No set or map
 * per Service: the kernel's cost of creating sets grows with the number already in the table, so a
 * map per Service makes a full load quadratic. Without affinity the rule DNATs straight away (no
 * chain per endpoint); with affinity it goes to an endpoint chain that records the client.
 */
function nftDispatch(port: ServicePortRules, endpoints: EndpointTarget[]) {
  const affinity = port.affinitySeconds > 0;
  const named = affinity ? endpoints.map((endpoint) => affinityNames(port, endpoint)) : [];
  let remaining = endpoints.reduce((sum, endpoint) => sum + endpoint.weight, 0);
  const choices = endpoints.map((endpoint, index) => {
    const last = index === endpoints.length - 1;
    const choice = {
      modulus: remaining,
      below: last ? undefined : endpoint.weight,
      chain: named[index]?.name,
      destination: endpointDestination(endpoint),
    };
    remaining -= endpoint.weight;
    return choice;
  });
  return {
    affinity: named.map(({ name, affinitySet }) => ({ set: affinitySet, chain: name })),
    choices,
  };
}

/** An affinity endpoint's chain (which records the client) and its set of clients, from one hash. */
function affinityNames(port: ServicePortRules, endpoint: EndpointTarget): { name: string; affinitySet: string } {
  const hashed = endpointHash(port, endpoint);
  return { name: `sep-${hashed}`, affinitySet: `affinity-${hashed}` };
}

/** The port's endpoints, each once, though its cluster and local groups may both hold it. */
function uniqueEndpoints(port: ServicePortRules): EndpointTarget[] {
  const byAddress = new Map<string, EndpointTarget>();
  for (const group of [port.cluster, port.local]) for (const endpoint of group?.endpoints ?? []) byAddress.set(endpointKey(port.protocol, endpoint.ip, endpoint.port), endpoint);
  return [...byAddress.values()];
}

/** How a node port's destination is matched, as nft-table-open.hbs prints it; undefined: node ports are matched nowhere. */
function nftNodePortMatch(addresses: NodePortAddresses, address: 'ip' | 'ip6'): NodePortMatch | undefined {
  switch (addresses.kind) {
    case 'addresses':
      return addresses.addresses.length > 0 ? { set: 'nodeport-ips' } : undefined;
    case 'cidrs':
      return addresses.cidrs.length > 0 ? { cidrs: addresses.cidrs.join(', ') } : undefined;
    case 'all':
      // Node ports on loopback would need route_localnet; kube-proxy's nftables mode leaves them out too.
      return { notLoopback: address === 'ip' ? '127.0.0.0/8' : '::1' };
  }
}
