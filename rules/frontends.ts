// Service frontends: what each Service address answers on a node, one row per address, port and
// protocol, with the endpoints a new connection can reach and each one's probability. desiredFrontends
// reads them from NodeRules; each backend reads them back from the kernel (Backend.frontends), so that
// `ferry services` shows what is programmed and a test can hold the two side by side.
import { addressSortKey, canonicalCIDR } from '../controlplane/model/ip.js';
import type { EndpointGroup, FamilyRules, L4Protocol, NodeRules, ServicePortRules } from './node-rules.js';
import { compareText } from './port-changes.js';

/**
 * ClusterIP: the cluster IP, as pods and the node's processes reach it. External: an externalIP or a
 * load-balancer ingress IP (the rules treat both alike, so the kernel cannot tell them apart). NodePort:
 * the node port, on the node-port addresses.
 */
export type FrontendKind = 'ClusterIP' | 'External' | 'NodePort';

export interface FrontendEndpoint {
  ip: string;
  port: number;
  /** The share of new connections (affinity aside): the load-aware weights as the kernel draws them. */
  probability: number;
}

export interface ServiceFrontend {
  /** Node ports: the family's any-address (0.0.0.0 or ::), standing for the node-port addresses. */
  address: string;
  port: number;
  protocol: L4Protocol;
  kind: FrontendKind;
  /** namespace/name:port/protocol, where the kernel's objects name it (eBPF maps and bare verdicts do not: null). */
  service: string | null;
  /** What a new connection meets: ClusterIP from pods and node processes, the others from outside the node. */
  verdict: 'forward' | 'reject' | 'drop';
  /** ClientIP session affinity's timeout; 0 without affinity. */
  affinitySeconds: number;
  /** loadBalancerSourceRanges (as CIDRs) that may reach a load-balancer IP; empty: everyone. */
  sourceRanges: string[];
  endpoints: FrontendEndpoint[];
}

export const anyAddress = (ipv6: boolean) => (ipv6 ? '::' : '0.0.0.0');

/** The frontends the rules program, sorted as sortFrontends sorts. */
export function desiredFrontends(rules: NodeRules): ServiceFrontend[] {
  return sortFrontends(rules.families.flatMap((family) => family.servicePorts.flatMap((port) => portFrontends(family, port))));
}

function portFrontends(family: FamilyRules, port: ServicePortRules): ServiceFrontend[] {
  const row = (address: string, kind: FrontendKind, target: EndpointGroup | 'reject' | 'drop' | undefined, sourceRanges: string[] = []): ServiceFrontend => ({
    address, port: kind === 'NodePort' ? port.nodePort : port.port, protocol: port.protocol, kind, service: port.id,
    verdict: typeof target === 'string' ? target : 'forward',
    affinitySeconds: typeof target === 'object' ? port.affinitySeconds : 0,
    sourceRanges: sourceRanges.map(cidrOf).sort(compareText),
    endpoints: typeof target === 'object' ? groupEndpoints(target) : [],
  });
  const internal = port.internal === 'cluster' ? port.cluster : port.internal === 'local' ? port.local : port.internal;
  const rows = [row(port.clusterIP, 'ClusterIP', internal)];
  const external = port.external;
  if (!external) return rows;
  const outside = external.verdict ?? (external.policy === 'Local' ? port.local : port.cluster);
  for (const ip of port.externalIPs) rows.push(row(ip, 'External', outside, port.firewall?.loadBalancerIPs.includes(ip) ? port.firewall.sourceRanges : []));
  if (port.nodePort > 0) rows.push(row(anyAddress(family.family === 'IPv6'), 'NodePort', outside));
  return rows;
}

/** Each endpoint's share: its weight over the group's total. */
function groupEndpoints(group: EndpointGroup): FrontendEndpoint[] {
  const total = group.endpoints.reduce((sum, endpoint) => sum + endpoint.weight, 0);
  return group.endpoints.map((endpoint) => ({ ip: endpoint.ip, port: endpoint.port, probability: endpoint.weight / total }));
}

/**
 * The probabilities of choices tried one after another, each taken with its own chance (iptables'
 * statistic match, nftables' `numgen random mod N < k` over the weights left): a choice is reached
 * only when every one before it was passed over.
 */
export function sequentialProbabilities(chances: number[]): number[] {
  let left = 1;
  return chances.map((chance) => {
    const probability = left * chance;
    left *= 1 - chance;
    return probability;
  });
}

/** An address or CIDR as a CIDR (a bare address is its host route). */
export function cidrOf(text: string): string {
  return canonicalCIDR(text.includes('/') ? text : `${text}/${text.includes(':') ? 128 : 32}`) ?? text;
}

/** By address (IPv4 first), port, protocol and kind; endpoints by address and port. */
export function sortFrontends(frontends: ServiceFrontend[]): ServiceFrontend[] {
  const key = (frontend: ServiceFrontend) => `${addressSortKey(frontend.address)}|${String(frontend.port).padStart(5, '0')}|${frontend.protocol}|${frontend.kind}`;
  const endpointKey = (endpoint: FrontendEndpoint) => `${addressSortKey(endpoint.ip)}|${String(endpoint.port).padStart(5, '0')}`;
  return frontends
    .map((frontend) => ({ frontend: { ...frontend, endpoints: [...frontend.endpoints].sort((a, b) => compareText(endpointKey(a), endpointKey(b))) }, key: key(frontend) }))
    .sort((a, b) => compareText(a.key, b.key))
    .map(({ frontend }) => frontend);
}
