// render: NodeRules to nft or iptables-restore text through the Handlebars templates in templates/.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import type {
  EndpointGroup, EndpointTarget, FamilyRules, FilterVerdict, NodePortAddresses, NodeRules, ServicePortRules,
} from '../controlplane/compute/node-rules.js';
import { packageRoot } from '../controlplane/package-root.js';
import { nftIdentifier, ruleComment } from './escape.js';

export type Backend = 'nftables' | 'iptables';

/** The rendered rule set of one backend, per family where the backend needs one text per family. */
export interface RenderedRules {
  backend: Backend;
  /** nftables: one script for both families. iptables: one restore input per family. */
  texts: { family: 'IPv4' | 'IPv6' | 'both'; text: string }[];
  /** nftables: the text in parts, so that an update can skip what did not change (see nft-incremental.ts). */
  nftTables?: NftTableText[];
}

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

const templates = loadTemplates();

/** Renders node rules for a backend; pure: the same rules give the same text. */
export function render(rules: NodeRules, backend: Backend): RenderedRules {
  if (backend === 'nftables') {
    const tables = rules.families.map((family) => nftTable(family, rules.masqueradeMark));
    // The whole script is only printed when something reads it (a full apply, `ferry render`): an
    // incremental sync works from the parts and never builds the largest string of all.
    let text: string | undefined;
    return {
      backend,
      texts: [{ family: 'both', get text() { return (text ??= templates.nftables({ node: rules.node, tables })); } }],
      nftTables: tables.map((table) => ({
        family: table.family,
        head: templates.nftTable({ ...table, collections: table.collections.map((collection) => ({ ...collection, elements: [] })), servicePortChains: [] }),
        elements: new Map(table.collections.map((collection) => [collection.name, collection.elements])),
        servicePortChains: table.servicePortChains,
      })),
    };
  }
  return {
    backend,
    texts: rules.families.map((family) => ({
      family: family.family,
      text: templates.iptables({ node: rules.node, tables: [iptablesTable(family, rules.masqueradeMark)] }),
    })),
  };
}

/** The whole rendered output as one text, as `ferry render` prints it. */
export function renderedText(rendered: RenderedRules): string {
  return rendered.texts.map((part) => part.text).join('\n');
}

function loadTemplates() {
  const handlebars = Handlebars.create();
  const directory = join(packageRoot(), 'templates');
  const compile = (name: string) => handlebars.compile(readFileSync(join(directory, `${name}.hbs`), 'utf8'), { noEscape: true, strict: true });
  // Only the Handlebars files here are partials (templates/ebpf/ holds BPF C sources).
  for (const file of readdirSync(directory).filter((entry) => entry.endsWith('.hbs'))) {
    const name = file.replace(/\.hbs$/, '');
    if (name !== 'nftables' && name !== 'iptables' && name !== 'nft-service-port') handlebars.registerPartial(name, compile(name));
  }
  return { nftables: compile('nftables'), iptables: compile('iptables'), nftTable: compile('nft-table'), nftServicePort: compile('nft-service-port') };
}

// ---- shared shapes ----

interface ChainNames {
  group(port: ServicePortRules, kind: 'cluster' | 'local'): string;
  external(port: ServicePortRules): string;
  firewall(port: ServicePortRules): string;
  endpoint(endpoint: EndpointTarget): string;
}

const nftNames: ChainNames = {
  group: (port, kind) => `${kind === 'cluster' ? 'svc' : 'svl'}-${port.hash}-${nftIdentifier(port.id.replace(':', '/'))}`,
  external: (port) => `ext-${port.hash}-${nftIdentifier(port.id.replace(':', '/'))}`,
  firewall: (port) => `fw-${port.hash}-${nftIdentifier(port.id.replace(':', '/'))}`,
  endpoint: (endpoint) => `sep-${endpoint.hash}`,
};

const iptablesNames: ChainNames = {
  group: (port, kind) => `FERRY-${kind === 'cluster' ? 'SVC' : 'SVL'}-${port.hash}`,
  external: (port) => `FERRY-EXT-${port.hash}`,
  firewall: (port) => `FERRY-FW-${port.hash}`,
  endpoint: (endpoint) => `FERRY-SEP-${endpoint.hash}`,
};

function endpointDestination(endpoint: EndpointTarget): string {
  return endpoint.ip.includes(':') ? `[${endpoint.ip}]:${endpoint.port}` : `${endpoint.ip}:${endpoint.port}`;
}

/** Each endpoint chain once, though cluster and local groups may both lead to it. */
function endpointChains(family: FamilyRules, names: ChainNames, source: (ip: string) => string) {
  const chains = new Map<string, { port: ServicePortRules; endpoint: EndpointTarget }>();
  for (const port of family.servicePorts) {
    for (const group of [port.cluster, port.local]) {
      for (const endpoint of group?.endpoints ?? []) chains.set(names.endpoint(endpoint), { port, endpoint });
    }
  }
  return [...chains.entries()].map(([name, { port, endpoint }]) => ({
    name,
    source: source(endpoint.ip),
    protocol: port.protocol,
    destination: endpointDestination(endpoint),
    comment: ruleComment(`${port.id} -> ${endpointDestination(endpoint)}`),
    affinitySeconds: port.affinitySeconds,
  }));
}

function groups(port: ServicePortRules): { kind: 'cluster' | 'local'; group: EndpointGroup }[] {
  const result: { kind: 'cluster' | 'local'; group: EndpointGroup }[] = [];
  if (port.cluster) result.push({ kind: 'cluster', group: port.cluster });
  if (port.local) result.push({ kind: 'local', group: port.local });
  return result;
}

function masqueradeRule(port: ServicePortRules, group: EndpointGroup, localCIDR: string | undefined, host: (ip: string) => string) {
  if (group.clusterIPMasquerade === 'none') return undefined;
  const offCluster = group.clusterIPMasquerade === 'off-cluster' ? localCIDR : undefined;
  return {
    clusterIP: host(port.clusterIP),
    protocol: port.protocol,
    port: port.port,
    offCluster,
    reason: offCluster ? 'off-cluster traffic to the cluster IP' : 'all traffic to the cluster IP',
  };
}

/** Traffic to the cluster IP goes to a group chain or meets a verdict: exactly one of the two. */
function internalTarget(port: ServicePortRules, names: ChainNames): { chain: string } | { verdict: FilterVerdict } {
  return port.internal === 'cluster' || port.internal === 'local'
    ? { chain: names.group(port, port.internal) }
    : { verdict: port.internal };
}

/** External destinations lead to the external chain whenever there are endpoints at all. */
function externalTarget(port: ServicePortRules, names: ChainNames): string | undefined {
  return port.external && port.external.verdict !== 'reject' ? names.external(port) : undefined;
}

function externalChain(port: ServicePortRules, names: ChainNames) {
  const external = port.external!;
  return {
    name: names.external(port),
    local: external.policy === 'Local',
    clusterChain: names.group(port, 'cluster'),
    localChain: external.hasLocalEndpoints ? names.group(port, 'local') : undefined,
    comment: ruleComment(`${port.id} external`),
  };
}

// ---- nftables ----

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
  /** `ip . ip` for every endpoint, the elements of hairpin-endpoints. */
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
    affinitySets: [], hairpinPairs: uniqueEndpoints(port).map((endpoint) => `${endpoint.ip} . ${endpoint.ip}`), chains: '',
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

// ---- iptables ----

function iptablesTable(family: FamilyRules, mark: string) {
  const ipv6 = family.family === 'IPv6';
  const host = (ip: string) => `${ip}/${ipv6 ? 128 : 32}`;
  const names = iptablesNames;
  const reject = ipv6 ? 'icmp6-port-unreachable' : 'icmp-port-unreachable';
  const target = (filter: FilterVerdict) => (filter === 'reject' ? `REJECT --reject-with ${reject}` : 'DROP');
  const serviceEntries: object[] = [];
  const nodePortEntries: object[] = [];
  const noEndpointServices: object[] = [];
  const noEndpointNodePorts: object[] = [];

  for (const port of family.servicePorts) {
    const entry = (destination: string, chain: string, comment: string) =>
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
      const nodePort = (chain: string, comment: string) => ({ protocol: port.protocol, port: port.nodePort, target: chain, comment: ruleComment(comment) });
      if (external) nodePortEntries.push(nodePort(external, `${port.id} node port`));
      if (externalVerdict) noEndpointNodePorts.push(nodePort(target(externalVerdict), noEndpointsComment(port, externalVerdict)));
    }
  }

  return {
    family: family.family,
    restoreCommand: ipv6 ? 'ip6tables-restore' : 'iptables-restore',
    mark,
    reject,
    hostMask: ipv6 ? 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' : '255.255.255.255',
    clusterIPs: family.clusterIPs.map(host),
    serviceCIDRs: family.serviceCIDRs,
    nodePortMatches: iptablesNodePortMatches(family.nodePortAddresses, host, ipv6),
    serviceEntries,
    nodePortEntries,
    noEndpointServices,
    noEndpointNodePorts,
    firewallChains: family.servicePorts.filter((port) => port.firewall).map((port) => ({
      name: names.firewall(port),
      destinations: port.firewall!.loadBalancerIPs.map(host),
      protocol: port.protocol,
      port: port.port,
      allowed: port.firewall!.sourceRanges,
      comment: ruleComment(`${port.id} loadBalancerSourceRanges`),
    })),
    groupChains: family.servicePorts.flatMap((port) => groups(port).map(({ kind, group }) => ({
      name: names.group(port, kind),
      comment: ruleComment(kind === 'cluster' ? port.id : `${port.id} local endpoints`),
      masquerade: masqueradeRule(port, group, family.localCIDR, host),
      affinity: port.affinitySeconds > 0
        ? group.endpoints.map((endpoint) => ({ chain: names.endpoint(endpoint), seconds: port.affinitySeconds }))
        : [],
      choices: cumulativeProbabilities(group.endpoints).map(({ endpoint, probability }) => ({ chain: names.endpoint(endpoint), probability })),
    }))),
    externalChains: family.servicePorts.filter((port) => externalTarget(port, names)).map((port) => ({
      ...externalChain(port, names),
      podCIDR: family.localCIDR ?? '',
    })),
    endpointChains: endpointChains(family, names, host),
  };
}

function noEndpointsComment(port: ServicePortRules, verdict: FilterVerdict): string {
  return `${port.id} ${verdict === 'reject' ? 'has no endpoints' : 'has no local endpoints'}`;
}

/**
 * iptables walks the rules in order, so endpoint i gets the probability w_i / (w_i + ... + w_n) of
 * what is left; the last one takes the rest unconditionally. Ten decimals, as kube-proxy prints them.
 */
export function cumulativeProbabilities(endpoints: EndpointTarget[]): { endpoint: EndpointTarget; probability?: string }[] {
  let remaining = endpoints.reduce((sum, endpoint) => sum + endpoint.weight, 0);
  return endpoints.map((endpoint, index) => {
    const probability = index === endpoints.length - 1 ? undefined : (endpoint.weight / remaining).toFixed(10);
    remaining -= endpoint.weight;
    return { endpoint, probability };
  });
}

function iptablesNodePortMatches(addresses: NodePortAddresses, host: (ip: string) => string, ipv6: boolean): string[] {
  switch (addresses.kind) {
    case 'addresses':
      return addresses.addresses.map((ip) => `-d ${host(ip)}`);
    case 'cidrs':
      return addresses.cidrs.map((cidr) => `-d ${cidr} -m addrtype --dst-type LOCAL`);
    case 'all':
      return [`! -d ${ipv6 ? '::1/128' : '127.0.0.0/8'} -m addrtype --dst-type LOCAL`];
  }
}
