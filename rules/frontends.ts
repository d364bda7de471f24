// Service frontends: what each Service address answers on a node, one row per address, port and
// protocol, with the endpoints a new connection can reach and each one's probability, and the family-wide
// facts a connection meets besides (cluster IPs, service CIDRs, node-port addresses, the local CIDR).
// desiredFrontends reads them from NodeRules; each backend reads them back from the kernel
// (Backend.frontends), so that `ferry services` shows what is programmed, `ferry trace --live` follows
// it (frontendRules turns it back into NodeRules for the tracer), and a test holds the two side by side.
import type { IPFamily } from '../controlplane/model/types.js';
import { addressSortKey, canonicalCIDR } from '../controlplane/model/ip.js';
import type { EndpointGroup, FamilyRules, L4Protocol, NodePortAddresses, NodeRules, ServicePortRules } from './node-rules.js';
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
  /**
   * Who is masqueraded on the way: ClusterIP, 'off-cluster' for sources outside the local CIDR, 'all'
   * (masqueradeAll) or 'none'; External and NodePort, 'all' under externalTrafficPolicy Cluster and
   * 'none' under Local (where only the node's own connections are).
   */
  masquerade: 'all' | 'off-cluster' | 'none';
  /**
   * External and NodePort under externalTrafficPolicy Local: what pods in the local CIDR and the node's
   * own processes reach instead (every endpoint), also where outside traffic is dropped for want of a
   * local endpoint; null under Cluster, for cluster IPs and where the Service has no endpoint at all.
   */
  inside: FrontendEndpoint[] | null;
}

/** What a family's connections meet besides the frontends. */
export interface FrontendFamily {
  family: IPFamily;
  localCIDR?: string;
  clusterIPs: string[];
  serviceCIDRs: string[];
  nodePortAddresses: NodePortAddresses;
}

export interface FrontendState {
  families: FrontendFamily[];
  frontends: ServiceFrontend[];
}

export const anyAddress = (ipv6: boolean) => (ipv6 ? '::' : '0.0.0.0');

/** The frontends the rules program, sorted as sortFrontends sorts, and their families' facts. */
export function desiredFrontends(rules: NodeRules): FrontendState {
  return {
    families: rules.families.map((family) => ({
      family: family.family, ...(family.localCIDR ? { localCIDR: family.localCIDR } : {}),
      clusterIPs: family.clusterIPs, serviceCIDRs: family.serviceCIDRs, nodePortAddresses: family.nodePortAddresses,
    })),
    frontends: sortFrontends(rules.families.flatMap((family) => family.servicePorts.flatMap((port) => portFrontends(family, port)))),
  };
}

function portFrontends(family: FamilyRules, port: ServicePortRules): ServiceFrontend[] {
  const row = (address: string, kind: FrontendKind, target: EndpointGroup | 'reject' | 'drop' | undefined, masquerade: ServiceFrontend['masquerade'], inside: EndpointGroup | undefined, sourceRanges: string[] = []): ServiceFrontend => ({
    address, port: kind === 'NodePort' ? port.nodePort : port.port, protocol: port.protocol, kind, service: port.id,
    verdict: typeof target === 'string' ? target : 'forward',
    affinitySeconds: typeof target === 'object' ? port.affinitySeconds : 0,
    sourceRanges: sourceRanges.map(cidrOf).sort(compareText),
    endpoints: typeof target === 'object' ? groupEndpoints(target) : [],
    masquerade, inside: inside ? groupEndpoints(inside) : null,
  });
  const internal = port.internal === 'cluster' ? port.cluster : port.internal === 'local' ? port.local : port.internal;
  const rows = [row(port.clusterIP, 'ClusterIP', internal, typeof internal === 'object' ? internal.clusterIPMasquerade : 'none', undefined)];
  const external = port.external;
  if (!external) return rows;
  const local = external.policy === 'Local';
  const outside = external.verdict ?? (local ? port.local : port.cluster);
  // Under Local the pods and the node reach every endpoint, also when outside traffic is dropped.
  const inside = local && external.verdict !== 'reject' ? port.cluster : undefined;
  const masquerade = local || external.verdict ? 'none' : 'all';
  for (const ip of port.externalIPs) rows.push(row(ip, 'External', outside, masquerade, inside, port.firewall?.loadBalancerIPs.includes(ip) ? port.firewall.sourceRanges : []));
  if (port.nodePort > 0) rows.push(row(anyAddress(family.family === 'IPv6'), 'NodePort', outside, masquerade, inside));
  return rows;
}

/**
 * The frontends as NodeRules again, for the tracer: one Service port per frontend (a frontend is all a
 * connection meets), named as the kernel names it. Weights are the shares, which the tracer only divides.
 */
export function frontendRules(node: string, state: FrontendState): NodeRules {
  return {
    node, masqueradeMark: '', healthChecks: [],
    families: state.families.map((family): FamilyRules => ({
      family: family.family, ...(family.localCIDR ? { localCIDR: family.localCIDR } : {}),
      nodePortAddresses: family.nodePortAddresses, serviceCIDRs: family.serviceCIDRs, clusterIPs: family.clusterIPs,
      servicePorts: state.frontends.filter((frontend) => frontend.address.includes(':') === (family.family === 'IPv6')).map(frontendPort),
    })),
  };
}

function frontendPort(frontend: ServiceFrontend): ServicePortRules {
  const group = (endpoints: FrontendEndpoint[], clusterIPMasquerade: EndpointGroup['clusterIPMasquerade'] = 'none'): EndpointGroup => ({
    endpoints: endpoints.map((endpoint) => ({ hash: '', ip: endpoint.ip, port: endpoint.port, weight: endpoint.probability, onNode: false })), clusterIPMasquerade,
  });
  const forward = frontend.verdict === 'forward';
  const base = {
    id: frontend.service ?? '', hash: '', protocol: frontend.protocol, clusterIP: '', port: frontend.port, nodePort: 0, externalIPs: [], loadBalancerIPs: [],
    internal: 'drop' as const, affinitySeconds: frontend.affinitySeconds, servingEndpoints: [],
  };
  if (frontend.kind === 'ClusterIP') {
    return { ...base, clusterIP: frontend.address, internal: forward ? 'cluster' : frontend.verdict as 'reject' | 'drop', ...(forward ? { cluster: group(frontend.endpoints, frontend.masquerade) } : {}) };
  }
  const local = frontend.inside !== null;
  const external = {
    policy: local ? 'Local' as const : 'Cluster' as const, hasLocalEndpoints: forward && local,
    ...(forward ? {} : { verdict: frontend.verdict as 'reject' | 'drop' }),
  };
  const groups = local ? { cluster: group(frontend.inside!), ...(forward ? { local: group(frontend.endpoints) } : {}) } : forward ? { cluster: group(frontend.endpoints) } : {};
  const address = frontend.kind === 'NodePort' ? { nodePort: frontend.port, port: 0 } : { externalIPs: [frontend.address] };
  const firewall = frontend.sourceRanges.length > 0 ? { firewall: { loadBalancerIPs: [frontend.address], sourceRanges: frontend.sourceRanges }, loadBalancerIPs: [frontend.address] } : {};
  return { ...base, ...address, ...firewall, ...groups, external };
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

/** By address (IPv4 first), port, protocol and kind; endpoints (and inside endpoints) by address and port. */
export function sortFrontends(frontends: ServiceFrontend[]): ServiceFrontend[] {
  const key = (frontend: ServiceFrontend) => `${addressSortKey(frontend.address)}|${String(frontend.port).padStart(5, '0')}|${frontend.protocol}|${frontend.kind}`;
  const endpointKey = (endpoint: FrontendEndpoint) => `${addressSortKey(endpoint.ip)}|${String(endpoint.port).padStart(5, '0')}`;
  const sorted = (endpoints: FrontendEndpoint[]) => [...endpoints].sort((a, b) => compareText(endpointKey(a), endpointKey(b)));
  return frontends
    .map((frontend) => ({ frontend: { ...frontend, endpoints: sorted(frontend.endpoints), inside: frontend.inside && sorted(frontend.inside) }, key: key(frontend) }))
    .sort((a, b) => compareText(a.key, b.key))
    .map(({ frontend }) => frontend);
}
