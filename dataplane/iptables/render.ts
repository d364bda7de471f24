// iptables rendering: NodeRules to one iptables-restore input per family, through the templates.
import type { EndpointGroup, FamilyRules, FilterVerdict, NodePortAddresses, NodeRules, EndpointTarget, ServicePortRules } from '../../rules/node-rules.js';
import type { RenderedRules } from '../backend.js';
import { ruleComment } from '../escape.js';
import { endpointDestination, externalChain, externalTarget, groups, internalTarget, masqueradeRule, type ChainNames } from '../render-shapes.js';
import { templates } from '../templates.js';
import { endpointHash } from '../../rules/names.js';

/** Renders node rules as iptables-restore input, one per family; pure: the same rules give the same text. */
export function renderIptables(rules: NodeRules): RenderedRules {
  return {
    backend: 'iptables',
    texts: rules.families.map((family) => ({
      family: family.family,
      text: templates.iptables({ node: rules.node, tables: [iptablesTable(family, rules.masqueradeMark)] }),
    })),
  };
}

const iptablesNames: ChainNames = {
  group: (port, kind) => `FERRY-${kind === 'cluster' ? 'SVC' : 'SVL'}-${port.hash}`,
  external: (port) => `FERRY-EXT-${port.hash}`,
  firewall: (port) => `FERRY-FW-${port.hash}`,
};

/** An endpoint's own chain (every iptables endpoint has one: the DNAT, and under affinity the recording of the client). */
const endpointChain = (port: ServicePortRules, endpoint: EndpointTarget) => `FERRY-SEP-${endpointHash(port, endpoint)}`;

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
      ...groupDispatch(port, group),
    }))),
    externalChains: family.servicePorts.filter((port) => externalTarget(port, names)).map((port) => ({
      ...externalChain(port, names),
      podCIDR: family.localCIDR ?? '',
    })),
    endpointChains: endpointChains(family, host),
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

/** Each endpoint chain once, though cluster and local groups may both lead to it. */
function endpointChains(family: FamilyRules, source: (ip: string) => string) {
  const chains = new Map<string, { port: ServicePortRules; endpoint: EndpointTarget }>();
  for (const port of family.servicePorts) {
    for (const group of [port.cluster, port.local]) {
      for (const endpoint of group?.endpoints ?? []) chains.set(endpointChain(port, endpoint), { port, endpoint });
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
