// NodeRules: the backend-neutral description of one node's Service NAT rules, which compute produces
// and every backend renders. Neither side owns it: it is the contract between them.
import type { IPFamily } from '../controlplane/model/types.js';

/** Lower-case protocol names, as both iptables and nftables spell them. */
export type L4Protocol = 'tcp' | 'udp' | 'sctp';

/** What a packet to a service address meets when no endpoint may take it. */
export type FilterVerdict = 'reject' | 'drop';

/** Which node addresses accept NodePort traffic. */
export type NodePortAddresses =
  | { kind: 'addresses'; addresses: string[] }
  | { kind: 'cidrs'; cidrs: string[] }
  | { kind: 'all' };

/** An endpoint that new connections may be sent to, with its share of them. */
export interface EndpointTarget {
  ip: string;
  port: number;
  /** A positive integer; the endpoint's share is weight / sum of weights in its group. */
  weight: number;
  /**
   * On this node, or on no node the slice names: only such an endpoint can open a connection through
   * this node's rules to its own Service (hairpin). A pod elsewhere is translated on its own node.
   */
  onNode: boolean;
}

/** A group of endpoints that new connections are spread over (kube-proxy's SVC or SVL chain). */
export interface EndpointGroup {
  endpoints: EndpointTarget[];
  /**
   * Masquerade rule for traffic addressed to the cluster IP: 'all' (masqueradeAll), 'off-cluster'
   * (source outside the local CIDRs) or 'none'. Only the group that the cluster IP leads to has one.
   */
  clusterIPMasquerade: 'all' | 'off-cluster' | 'none';
}

/** How traffic to external destinations (node ports, externalIPs, load-balancer IPs) is handled. */
export interface ExternalRules {
  policy: 'Cluster' | 'Local';
  /** Local policy only: whether the node has a local endpoint group to send outside traffic to. */
  hasLocalEndpoints: boolean;
  /** Set when external traffic must be refused before NAT (no endpoints, or none local under Local policy). */
  verdict?: FilterVerdict;
}

/** One port of one Service on one family: the unit that gets its own chains. */
export interface ServicePortRules {
  /** Readable identity 'namespace/name:port/protocol' used in comments. */
  id: string;
  /** Stable hash of the identity: names the per-service chains. */
  hash: string;
  protocol: L4Protocol;
  clusterIP: string;
  port: number;
  /** 0 when there is none. */
  nodePort: number;
  /** externalIPs and load-balancer ingress IPs of this family. */
  externalIPs: string[];
  /** Which of externalIPs are load-balancer ingress IPs (what `ferry trace` names the entry). */
  loadBalancerIPs: string[];
  /** Set when loadBalancerSourceRanges restrict who may reach the load-balancer IPs. */
  firewall?: { loadBalancerIPs: string[]; sourceRanges: string[] };
  /** Every usable endpoint (kube-proxy's cluster policy chain), when anything uses it. */
  cluster?: EndpointGroup;
  /** Usable endpoints on this node (local policy chain), when a Local policy uses it. */
  local?: EndpointGroup;
  /** Where traffic to the cluster IP goes. */
  internal: 'cluster' | 'local' | FilterVerdict;
  /** Set when the port is reachable from outside (node port, externalIPs, load-balancer IPs). */
  external?: ExternalRules;
  affinitySeconds: number;
  /**
   * The addresses of every endpoint still serving (ready, or serving while terminating), on any node and
   * whether this node uses it or not: a UDP flow to one of them is left alone (kube-proxy's rule), only
   * flows to endpoints that stopped serving are cleared.
   */
  servingEndpoints: string[];
}

/** All rules of one IP family on the node. */
export interface FamilyRules {
  family: IPFamily;
  /** Sources in this CIDR are cluster-local (detect-local); undefined disables the check. */
  localCIDR?: string;
  nodePortAddresses: NodePortAddresses;
  /** ServiceCIDR ranges: unallocated addresses in them are dropped. */
  serviceCIDRs: string[];
  /** Every cluster IP of the family: ports they do not serve are rejected. */
  clusterIPs: string[];
  servicePorts: ServicePortRules[];
}

/** A health-check node port of an externalTrafficPolicy Local Service, for load balancers to probe. */
export interface HealthCheck {
  namespace: string;
  name: string;
  port: number;
  /** Usable endpoints of the Service on this node, over all its ports and families. */
  localEndpoints: number;
}

/** Everything one node's dataplane must hold, for both families. */
export interface NodeRules {
  node: string;
  /** The masquerade mark bit as a hex mask, e.g. 0x4000. */
  masqueradeMark: string;
  families: FamilyRules[];
  healthChecks: HealthCheck[];
}
