// nftables rendering: NodeRules to one nft -f script for both families, through the templates, kept in
// parts (each table's head, set elements, each Service port's chains) for the incremental update.
import type { FamilyRules, FilterVerdict, NodePortAddresses, NodeRules, EndpointTarget, ServicePortRules } from '../../rules/node-rules.js';
import type { RenderedRules } from '../backend.js';
import { nftIdentifier, ruleComment } from '../escape.js';
import {
  endpointDestination, externalChain, externalTarget, groups, internalTarget, masqueradeRule, type ChainNames,
} from '../render-shapes.js';
import { templates } from '../templates.js';

/** One nftables table of the script: everything but the Service port chains, and those per port. */
export interface NftTableText {
  family: string;
  /** The table without Service port chains and without set and map elements. */
  head: string;
  /** The elements of each set and map, as the script prints them. */
  elements: Map<string, string[]>;
  /** Each Service port's chains; the same string as last time for a port whose rules did not change. */
  servicePortChains: string[];
}

/** Renders node rules as nftables; pure: the same rules give the same text. */
export function renderNftables(rules: NodeRules): RenderedRules {
  const tables = rules.families.map((family) => nftTable(family, rules.masqueradeMark));
  // The whole script is only printed when something reads it (a full apply, `ferry render`): an
  // incremental sync works from the parts and never builds the largest string of all.
  let text: string | undefined;
  return {
    backend: 'nftables',
    texts: [{ family: 'both', get text() { return (text ??= templates.nftables({ node: rules.node, tables })); } }],
    nftTables: tables.map((table) => ({
      family: table.family,
      head: templates.nftTable({ ...table, collections: table.collections.map((collection) => ({ ...collection, elements: [] })), servicePortChains: [] }),
      elements: new Map(table.collections.map((collection) => [collection.name, collection.elements])),
      servicePortChains: table.servicePortChains,
    })),
  };
}

const nftNames: ChainNames = {
  group: (port, kind) => `${kind === 'cluster' ? 'svc' : 'svl'}-${port.hash}-${nftIdentifier(port.id.replace(':', '/'))}`,
  external: (port) => `ext-${port.hash}-${nftIdentifier(port.id.replace(':', '/'))}`,
  firewall: (port) => `fw-${port.hash}-${nftIdentifier(port.id.replace(':', '/'))}`,
  endpoint: (endpoint) => `sep-${endpoint.hash}`,
};

function nftTable(family: FamilyRules, mark: string) {
  const ipv6 = family.family === 'IPv6';
  const address = ipv6 ? 'ip6' : 'ip';
  const addressType = ipv6 ? 'ipv6_addr' : 'ipv4_addr';
  const addressPortKey = `${addressType} . inet_proto . inet_service`;
  const ports = family.servicePorts.map((port) => nftServicePort(port, family));
  const nodePortIPs = family.nodePortAddresses.kind === 'addresses' ? family.nodePortAddresses.addresses : [];
  const collections: NftCollection[] = [
    { kind: 'set', name: 'cluster-ips', type: addressType, elements: family.clusterIPs, comment: '' },
    {
      kind: 'set', name: 'hairpin-endpoints', type: `${addressType} . ${addressType}`,
      elements: unique(ports.flatMap((port) => port.hairpinPairs)),
      comment: 'Hairpin: after DNAT, a connection whose source is the endpoint it was sent to must be masqueraded.',
    },
    ...(nodePortIPs.length > 0 ? [{ kind: 'set' as const, name: 'nodeport-ips', type: addressType, elements: nodePortIPs, comment: '' }] : []),
    { kind: 'map', name: 'service-ips', type: `${addressPortKey} : verdict`, elements: ports.flatMap((port) => port.serviceIPs), comment: '' },
    { kind: 'map', name: 'service-nodeports', type: 'inet_proto . inet_service : verdict', elements: ports.flatMap((port) => port.serviceNodePorts), comment: '' },
    { kind: 'map', name: 'no-endpoint-services', type: `${addressPortKey} : verdict`, elements: ports.flatMap((port) => port.noEndpointServices), comment: '' },
    { kind: 'map', name: 'no-endpoint-nodeports', type: 'inet_proto . inet_service : verdict', elements: ports.flatMap((port) => port.noEndpointNodePorts), comment: '' },
    { kind: 'map', name: 'firewall-ips', type: `${addressPortKey} : verdict`, elements: ports.flatMap((port) => port.firewallIPs), comment: '' },
  ];
  return {
    family: address,
    address,
    addressType,
    mark,
    collections,
    nodePortMatch: nftNodePortMatch(family.nodePortAddresses, address),
    serviceCIDRs: family.serviceCIDRs.join(', '),
    affinitySets: ports.flatMap((port) => port.affinitySets),
    servicePortChains: ports.map((port) => port.chains),
  };
}

/** A named set or map of a table, as nft-collection.hbs prints it. */
interface NftCollection {
  kind: 'set' | 'map';
  name: string;
  type: string;
  elements: string[];
  comment: string;
}

/** What one Service port adds to its family's table: map elements, sets, and its chains as text. */
interface NftServicePort {
  serviceIPs: string[];
  serviceNodePorts: string[];
  noEndpointServices: string[];
  noEndpointNodePorts: string[];
  firewallIPs: string[];
  affinitySets: { name: string; seconds: number }[];
  /**
   * `ip . ip` for every endpoint on this node, the elements of hairpin-endpoints: no other endpoint can
   * be a hairpin's source here, and the kernel dumps a set in time growing with the square of its
   * elements (`ferry diff` reads it), so a set of every endpoint of a large cluster would cost seconds.
   */
  hairpinPairs: string[];
  chains: string;
}

// Rendering a port depends only on the port's rules and the family's pod CIDR; compute hands back the
// same ServicePortRules object for a Service that did not change, so a sync renders only what changed.
const nftPortMemo = new WeakMap<ServicePortRules, { localCIDR: string | undefined; rendered: NftServicePort }>();

function nftServicePort(port: ServicePortRules, family: FamilyRules): NftServicePort {
  const memo = nftPortMemo.get(port);
  if (memo && memo.localCIDR === family.localCIDR) return memo.rendered;
  const rendered = renderNftServicePort(port, family);
  nftPortMemo.set(port, { localCIDR: family.localCIDR, rendered });
  return rendered;
}

function renderNftServicePort(port: ServicePortRules, family: FamilyRules): NftServicePort {
  const address = family.family === 'IPv6' ? 'ip6' : 'ip';
  const names = nftNames;
  const verdict = (filter: FilterVerdict) => (filter === 'reject' ? 'goto reject-chain' : 'drop');
  const key = (ip: string) => `${ip} . ${port.protocol} . ${port.port}`;
  const rendered: NftServicePort = {
    serviceIPs: [], serviceNodePorts: [], noEndpointServices: [], noEndpointNodePorts: [], firewallIPs: [],
    affinitySets: [], hairpinPairs: uniqueEndpoints(port).filter((endpoint) => endpoint.onNode).map((endpoint) => `${endpoint.ip} . ${endpoint.ip}`), chains: '',
  };
  const internal = internalTarget(port, names);
  if ('chain' in internal) rendered.serviceIPs.push(`${key(port.clusterIP)} : goto ${internal.chain}`);
  else rendered.noEndpointServices.push(`${key(port.clusterIP)} : ${verdict(internal.verdict)}`);
  const external = externalTarget(port, names);
  const externalVerdict = port.external?.verdict;
  for (const ip of port.externalIPs) {
    if (external) rendered.serviceIPs.push(`${key(ip)} : goto ${external}`);
    if (externalVerdict) rendered.noEndpointServices.push(`${key(ip)} : ${verdict(externalVerdict)}`);
  }
  if (port.nodePort > 0) {
    if (external) rendered.serviceNodePorts.push(`${port.protocol} . ${port.nodePort} : goto ${external}`);
    if (externalVerdict) rendered.noEndpointNodePorts.push(`${port.protocol} . ${port.nodePort} : ${verdict(externalVerdict)}`);
  }
  for (const ip of port.firewall?.loadBalancerIPs ?? []) rendered.firewallIPs.push(`${key(ip)} : goto ${names.firewall(port)}`);
  if (port.affinitySeconds > 0) {
    rendered.affinitySets = uniqueEndpoints(port).map((endpoint) => ({ name: nftAffinitySet(endpoint), seconds: port.affinitySeconds }));
  }
  rendered.chains = templates.nftServicePort({
    address,
    groupChains: groups(port).map(({ kind, group }) => ({
      name: names.group(port, kind),
      masquerade: masqueradeRule(port, group, family.localCIDR, (ip) => ip),
      protocol: port.protocol,
      ...nftDispatch(port, group.endpoints, names),
    })),
    externalChains: external ? [{ ...externalChain(port, names), podCIDR: family.localCIDR ?? '' }] : [],
    firewallChains: port.firewall
      ? [{ name: names.firewall(port), allowed: port.firewall.sourceRanges, comment: ruleComment(`${port.id} loadBalancerSourceRanges`) }]
      : [],
    // Only affinity needs a chain per endpoint (to record the client); the rest DNAT from the group chain.
    endpointChains: port.affinitySeconds > 0
      ? uniqueEndpoints(port).map((endpoint) => ({
          name: names.endpoint(endpoint),
          affinitySet: nftAffinitySet(endpoint),
          protocol: port.protocol,
          destination: endpointDestination(endpoint),
          comment: ruleComment(`${port.id} -> ${endpointDestination(endpoint)}`),
        }))
      : [],
  });
  return rendered;
}

/**
 * How a group chain picks an endpoint: one rule per endpoint, each taking its weight's share of what
 * the rules before it left (as iptables' statistic rules do), the last unconditional. No set or map
 * per Service: the kernel's cost of creating sets grows with the number already in the table, so a
 * map per Service makes a full load quadratic. Without affinity the rule DNATs straight away (no
 * chain per endpoint); with affinity it goes to an endpoint chain that records the client.
 */
function nftDispatch(port: ServicePortRules, endpoints: EndpointTarget[], names: ChainNames) {
  const affinity = port.affinitySeconds > 0;
  let remaining = endpoints.reduce((sum, endpoint) => sum + endpoint.weight, 0);
  const choices = endpoints.map((endpoint, index) => {
    const last = index === endpoints.length - 1;
    const choice = {
      modulus: remaining,
      below: last ? undefined : endpoint.weight,
      chain: affinity ? names.endpoint(endpoint) : undefined,
      destination: endpointDestination(endpoint),
    };
    remaining -= endpoint.weight;
    return choice;
  });
  return {
    affinity: affinity ? endpoints.map((endpoint) => ({ set: nftAffinitySet(endpoint), chain: names.endpoint(endpoint) })) : [],
    choices,
  };
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}

function nftAffinitySet(endpoint: Pick<EndpointTarget, 'hash'>): string {
  return `affinity-${endpoint.hash}`;
}

function uniqueEndpoints(port: ServicePortRules): EndpointTarget[] {
  const byHash = new Map<string, EndpointTarget>();
  for (const group of [port.cluster, port.local]) for (const endpoint of group?.endpoints ?? []) byHash.set(endpoint.hash, endpoint);
  return [...byHash.values()];
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
