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
import { parseRenderedTables, type TableModel } from './parse.js';

/** One Service port's share of its family's table: its map and set elements, its chains, their digest. */
export interface NftPortPart {
  /** The port's cluster IP: an element of cluster-ips while any port has it. */
  clusterIP: string;
  /** The elements it adds to each of the table's maps and sets, by name. */
  elements: ReadonlyMap<string, readonly string[]>;
  /** Its dynamic sets for session affinity. */
  affinitySets: { name: string; seconds: number }[];
  /** The chains it declares, by name, and their text as the templates print them. */
  chainNames: string[];
  chains: string;
  /** Rule lines in its chains, and lines in total (rules and elements), for the stamp and the rules metric. */
  rules: number;
  lines: number;
  /** sha256 of everything above, as a number: a table's digest is the sum over its parts (see shell.ts). */
  digest: bigint;
}

/** One nftables table: the part every sync shares (head) and one part per Service port. */
export interface NftTableRendering {
  family: 'ip' | 'ip6';
  rules: FamilyRules;
  /** The masquerade mark the head's chains set. */
  mark: string;
  /** The table without the ports' chains, elements and affinity sets; of constant size. */
  head: string;
  /** The head read back into its chains and collections, once (the check, the reassert and the counts use it). */
  headTable: TableModel;
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
function tableElements(table: NftTableRendering, collection: NftCollection): string[] {
  // In address order, as the other sets print (each pair is one address twice).
  if (collection.name === 'hairpin-endpoints') {
    return [...new Set(table.ports.flatMap((part) => part.elements.get('hairpin-endpoints') ?? []))].map((pair) => ({ pair, key: addressSortKey(pair.slice(0, pair.indexOf(' '))) }))
      .sort((a, b) => compareText(a.key, b.key)).map(({ pair }) => pair);
  }
  if (!(PORT_COLLECTIONS as readonly string[]).includes(collection.name)) return collection.elements;
  return table.ports.flatMap((part) => part.elements.get(collection.name) ?? []);
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
  const collections: NftCollection[] = [
    { kind: 'set', name: 'cluster-ips', type: addressType, elements: family.clusterIPs, comment: '' },
    {
      kind: 'set', name: 'hairpin-endpoints', type: `${addressType} . ${addressType}`, elements: [],
      comment: 'Hairpin: after DNAT, a connection whose source is the endpoint it was sent to must be masqueraded.',
    },
    ...(nodePortIPs.length > 0 ? [{ kind: 'set' as const, name: 'nodeport-ips', type: addressType, elements: nodePortIPs, comment: '' }] : []),
    { kind: 'map', name: 'service-ips', type: `${addressPortKey} : verdict`, elements: [], comment: '' },
    { kind: 'map', name: 'service-nodeports', type: 'inet_proto . inet_service : verdict', elements: [], comment: '' },
    { kind: 'map', name: 'no-endpoint-services', type: `${addressPortKey} : verdict`, elements: [], comment: '' },
    { kind: 'map', name: 'no-endpoint-nodeports', type: 'inet_proto . inet_service : verdict', elements: [], comment: '' },
    { kind: 'map', name: 'firewall-ips', type: `${addressPortKey} : verdict`, elements: [], comment: '' },
  ];
  return {
    collections,
    head: {
      family: address,
      address,
      addressType,
      mark,
      nodePortMatch: nftNodePortMatch(family.nodePortAddresses, address),
      serviceCIDRs: family.serviceCIDRs.join(', '),
    },
  };
}

/** A family's table from its ports' parts (in the order of servicePorts). */
function tableOf(family: FamilyRules, mark: string, ports: NftPortPart[]): NftTableRendering {
  return {
    ...headOf(family, mark), rules: family, ports, totals: ports.reduce((totals, part) => addPart(totals, part), NO_TOTALS),
    hairpin: Counts.of(ports.flatMap((part) => part.elements.get('hairpin-endpoints') ?? [])),
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

function headOf(family: FamilyRules, mark: string): Pick<NftTableRendering, 'family' | 'mark' | 'head' | 'headTable' | 'headRules' | 'collections'> {
  const { collections, head: view } = tableShape(family, mark);
  const head = templates.nftTableOpen({ ...view, replace: true }) + templates.nftTableClose({ ...view, collections: collections.map((collection) => ({ ...collection, elements: [] })), affinitySets: [] });
  const headTable = parseRenderedTables(head).get(view.family)!;
  const headRules = [...headTable.chains.values()].reduce((sum, chain) => sum + chain.rules.length, 0);
  return { family: view.family, mark, collections, head, headTable, headRules };
}

/** A table after a change: the parts of the changed ports rendered again (spliceParts), the rest taken over. */
function updateTable(before: NftTableRendering, family: FamilyRules, mark: string, changed: ReadonlySet<string>): NftTableRendering {
  const { parts: ports, gone, made } = spliceParts(before.rules, before.ports, family, changed, (port) => nftServicePort(port, family));
  let totals = before.totals;
  const hairpin: [string, number][] = [];
  for (const [list, delta] of [[gone, -1], [made, 1]] as const) {
    for (const part of list) {
      totals = addPart(totals, part, delta);
      for (const pair of part.elements.get('hairpin-endpoints') ?? []) hairpin.push([pair, delta]);
    }
  }
  return { ...headOf(family, mark), rules: family, ports, hairpin: before.hairpin.with(hairpin), totals };
}

/** A named set or map of a table, as nft-collection.hbs prints it. */
interface NftCollection {
  kind: 'set' | 'map';
  name: string;
  type: string;
  elements: string[];
  comment: string;
}

function nftServicePort(port: ServicePortRules, family: FamilyRules): NftPortPart {
  const names = nftNames;
  const verdict = (filter: FilterVerdict) => (filter === 'reject' ? 'goto reject-chain' : 'drop');
  const key = (ip: string) => `${ip} . ${port.protocol} . ${port.port}`;
  const elements = new Map<string, string[]>([...PORT_COLLECTIONS, 'hairpin-endpoints'].map((name) => [name, []]));
  const add = (collection: string, element: string) => elements.get(collection)!.push(element);
  // `ip . ip` for every endpoint on this node: no other endpoint can be a hairpin's source here, and
  // the kernel dumps a set in time growing with the square of its elements (`ferry diff` reads it).
  for (const endpoint of uniqueEndpoints(port)) if (endpoint.onNode) add('hairpin-endpoints', `${endpoint.ip} . ${endpoint.ip}`);
  const internal = internalTarget(port, names);
  if ('chain' in internal) add('service-ips', `${key(port.clusterIP)} : goto ${internal.chain}`);
  else add('no-endpoint-services', `${key(port.clusterIP)} : ${verdict(internal.verdict)}`);
  const external = externalTarget(port, names);
  const externalVerdict = port.external?.verdict;
  for (const ip of port.externalIPs) {
    if (external) add('service-ips', `${key(ip)} : goto ${external}`);
    if (externalVerdict) add('no-endpoint-services', `${key(ip)} : ${verdict(externalVerdict)}`);
  }
  if (port.nodePort > 0) {
    if (external) add('service-nodeports', `${port.protocol} . ${port.nodePort} : goto ${external}`);
    if (externalVerdict) add('no-endpoint-nodeports', `${port.protocol} . ${port.nodePort} : ${verdict(externalVerdict)}`);
  }
  for (const ip of port.firewall?.loadBalancerIPs ?? []) add('firewall-ips', `${key(ip)} : goto ${names.firewall(port)}`);
  // Only affinity needs a chain per endpoint (to record the client); the rest DNAT from the group chain.
  const affinityEndpoints = port.affinitySeconds > 0 ? uniqueEndpoints(port).map((endpoint) => ({ endpoint, ...affinityNames(port, endpoint) })) : [];
  const affinitySets = affinityEndpoints.map(({ affinitySet }) => ({ name: affinitySet, seconds: port.affinitySeconds }));
  const shape = chainShapes(port, family, external, affinityEndpoints);
  const chains = templates.nftServicePort(shape);
  const chainNames = [...shape.groupChains, ...shape.externalChains, ...shape.firewallChains, ...shape.endpointChains].map((chain) => chain.name);
  let elementCount = 0;
  // One string hashed in one call: a Hash object fed piece by piece cost more than the hashing.
  let hashed = port.id;
  for (const [name, list] of elements) {
    elementCount += list.length;
    hashed += `\0${name}\0${list.join('\n')}`;
  }
  for (const set of affinitySets) hashed += `\0${set.name} ${set.seconds}`;
  const digest = BigInt(`0x${hash('sha256', `${hashed}\0${chains}`, 'hex')}`);
  // Lines inside a chain block that are rules: those indented twice (a chain's `chain NAME {` and `}` once).
  let rules = 0;
  for (let at = chains.indexOf('\n\t\t'); at >= 0; at = chains.indexOf('\n\t\t', at + 3)) rules += 1;
  return { clusterIP: port.clusterIP, elements, affinitySets, chainNames, chains, rules, lines: rules + elementCount, digest };
}

/** What the service-port template prints a port's chains from. */
function chainShapes(port: ServicePortRules, family: FamilyRules, external: string | undefined, affinityEndpoints: Array<{ endpoint: EndpointTarget; name: string; affinitySet: string }>) {
  const names = nftNames;
  return {
    address: family.family === 'IPv6' ? 'ip6' : 'ip',
    groupChains: groups(port).map(({ kind, group }) => ({
      name: names.group(port, kind),
      masquerade: masqueradeRule(port, group, family.localCIDR, (ip) => ip),
      protocol: port.protocol,
      ...nftDispatch(port, group.endpoints),
    })),
    externalChains: external ? [{ ...externalChain(port, names), podCIDR: family.localCIDR ?? '' }] : [],
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

function nftNodePortMatch(addresses: NodePortAddresses, address: 'ip' | 'ip6'): string {
  switch (addresses.kind) {
    case 'addresses':
      return addresses.addresses.length > 0 ? `${address} daddr @nodeport-ips` : '';
    case 'cidrs':
      return addresses.cidrs.length > 0 ? `${address} daddr { ${addresses.cidrs.join(', ')} } fib daddr type local` : '';
    case 'all':
      // Node ports on loopback would need route_localnet; kube-proxy's nftables mode leaves them out too.
      return `fib daddr type local ${address} daddr != ${address === 'ip' ? '127.0.0.0/8' : '::1'}`;
  }
}
