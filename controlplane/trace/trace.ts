// `ferry trace`: where a new connection from a source to an address and port goes on one node, read
// from the node's rules as render computes them: which Service port and entry matched, the firewall,
// the traffic policy, masquerade, and the endpoints with their probabilities. Pure.
import { cidrContains, familyOf } from '../model/ip.js';
import type { EndpointGroup, FamilyRules, L4Protocol, NodeRules, ServicePortRules } from '../../rules/node-rules.js';

/** A new connection: from `source` to `destination`:`port` over `protocol`. */
export interface TraceQuery {
  source: string;
  destination: string;
  port: number;
  protocol: L4Protocol;
}

/** Where it goes, and why, step by step. */
export interface TraceAnswer {
  verdict: 'forward' | 'drop' | 'reject' | 'notIntercepted';
  /** `namespace/name:port` (the port's name, or its number when unnamed), or null when no Service port matched. */
  service: string | null;
  entry: 'clusterIP' | 'nodePort' | 'externalIP' | 'loadBalancerIP' | null;
  masquerade: boolean;
  /** Where a forwarded connection may go, each with its share of new connections; empty unless forwarded. */
  endpoints: { ip: string; port: number; probability: number }[];
  steps: string[];
}

/**
 * The path of a new connection on the node of `rules`, whose own addresses are `nodeAddresses` (a
 * source among them is a process on the node). It follows the rules as the nftables backend writes them
 * (the other backends implement the same NodeRules): the service address, then the node port.
 */
export function traceConnection(rules: NodeRules, nodeAddresses: readonly string[], query: TraceQuery): TraceAnswer {
  const steps: string[] = [];
  const answer = (verdict: TraceAnswer['verdict'], rest: Partial<TraceAnswer> = {}): TraceAnswer => ({ verdict, service: null, entry: null, masquerade: false, endpoints: [], steps, ...rest });
  const family = rules.families.find((candidate) => candidate.family === familyOf(query.destination));
  if (!family || familyOf(query.source) !== family.family) {
    steps.push('source and destination are not of one IP family ferry has rules for');
    return answer('notIntercepted');
  }
  const fromNode = nodeAddresses.includes(query.source);
  steps.push(fromNode ? `source ${query.source} is this node's address: a process on the node` : `source ${query.source}`);
  const match = matchPort(family, nodeAddresses, query);
  if (!match) {
    if (family.clusterIPs.includes(query.destination)) {
      steps.push(`${query.destination} is a cluster IP, but no Service port ${query.port}/${query.protocol} of it: rejected`);
      return answer('reject');
    }
    const range = family.serviceCIDRs.find((cidr) => cidrContains(cidr, query.destination));
    if (range) {
      steps.push(`${query.destination} is in the service CIDR ${range} but no Service holds it: dropped`);
      return answer('drop');
    }
    steps.push(`no Service answers at ${query.destination}:${query.port}/${query.protocol}: not intercepted`);
    return answer('notIntercepted');
  }
  const { port, entry } = match;
  // A port read back from the kernel may have no name (eBPF maps, a bare verdict).
  const service = port.id ? port.id.slice(0, port.id.lastIndexOf('/')) : null;
  steps.push(`matches ${service ? `${service}/${port.protocol}` : `a Service port the kernel does not name (${query.port}/${port.protocol})`} by its ${ENTRY_WORDS[entry]}`);
  const found = (verdict: TraceAnswer['verdict'], rest: Partial<TraceAnswer> = {}) => answer(verdict, { service, entry, ...rest });

  if (entry === 'loadBalancerIP' && port.firewall?.loadBalancerIPs.includes(query.destination)) {
    const allowed = port.firewall.sourceRanges.find((cidr) => cidrContains(cidr, query.source));
    if (!allowed) {
      steps.push(`loadBalancerSourceRanges (${port.firewall.sourceRanges.join(', ') || 'none of this family'}) do not hold the source: dropped`);
      return found('drop');
    }
    steps.push(`loadBalancerSourceRanges let it in (${allowed})`);
  }

  if (entry === 'clusterIP') {
    if (port.internal === 'reject' || port.internal === 'drop') {
      steps.push(port.internal === 'reject' ? 'the Service has no usable endpoint: rejected' : 'internalTrafficPolicy Local and no endpoint on this node: dropped');
      return found(port.internal);
    }
    const group = port[port.internal]!;
    steps.push(`internalTrafficPolicy ${port.internal === 'local' ? 'Local: this node\'s endpoints' : 'Cluster: every endpoint'}`);
    return forward(found, group, clusterIPMasquerade(group, family, query.source, steps), query.source, steps);
  }

  const external = port.external!;
  // Under a Local policy the pods' and the node's own connections take every endpoint before the
  // no-local-endpoint drop can see them (it looks at the address after DNAT), as in kube-proxy.
  const inside = external.policy === 'Local' && port.cluster !== undefined
    && (fromNode || (family.localCIDR !== undefined && cidrContains(family.localCIDR, query.source)));
  if (external.verdict && !(external.verdict === 'drop' && inside)) {
    steps.push(external.verdict === 'reject' ? 'the Service has no usable endpoint: rejected' : 'externalTrafficPolicy Local and no endpoint on this node: dropped');
    return found(external.verdict);
  }
  if (external.policy === 'Cluster') {
    steps.push('externalTrafficPolicy Cluster: every endpoint, masqueraded (the reply must come back through this node)');
    return forward(found, port.cluster!, true, query.source, steps);
  }
  if (family.localCIDR && cidrContains(family.localCIDR, query.source)) {
    steps.push(`externalTrafficPolicy Local, but the source is in the cluster's ${family.localCIDR}: every endpoint, not masqueraded`);
    return forward(found, port.cluster!, false, query.source, steps);
  }
  if (fromNode) {
    steps.push('externalTrafficPolicy Local, but the node itself is the client: every endpoint, masqueraded');
    return forward(found, port.cluster!, true, query.source, steps);
  }
  steps.push('externalTrafficPolicy Local: this node\'s endpoints, the client\'s address kept');
  return forward(found, port.local!, false, query.source, steps);
}

const ENTRY_WORDS: Record<NonNullable<TraceAnswer['entry']>, string> = {
  clusterIP: 'cluster IP', nodePort: 'node port', externalIP: 'external IP', loadBalancerIP: 'load-balancer IP',
};

/** The Service port a destination reaches, and by which entry: its address first, then a node port. */
function matchPort(family: FamilyRules, nodeAddresses: readonly string[], query: TraceQuery): { port: ServicePortRules; entry: NonNullable<TraceAnswer['entry']> } | undefined {
  const ofQuery = (port: ServicePortRules) => port.protocol === query.protocol;
  for (const port of family.servicePorts.filter(ofQuery)) {
    if (port.port !== query.port) continue;
    if (port.clusterIP === query.destination) return { port, entry: 'clusterIP' };
    if (port.externalIPs.includes(query.destination)) return { port, entry: port.loadBalancerIPs.includes(query.destination) ? 'loadBalancerIP' : 'externalIP' };
  }
  if (!nodePortAddress(family, nodeAddresses, query.destination)) return undefined;
  const port = family.servicePorts.find((candidate) => ofQuery(candidate) && candidate.nodePort === query.port);
  return port && { port, entry: 'nodePort' };
}

/** Whether node ports answer at this destination (nodePortAddresses). */
function nodePortAddress(family: FamilyRules, nodeAddresses: readonly string[], destination: string): boolean {
  const allowed = family.nodePortAddresses;
  switch (allowed.kind) {
    case 'addresses':
      return allowed.addresses.includes(destination);
    case 'cidrs':
      return nodeAddresses.includes(destination) && allowed.cidrs.some((cidr) => cidrContains(cidr, destination));
    case 'all':
      return nodeAddresses.includes(destination);
  }
}

function clusterIPMasquerade(group: EndpointGroup, family: FamilyRules, source: string, steps: string[]): boolean {
  switch (group.clusterIPMasquerade) {
    case 'all':
      steps.push('masqueradeAll: masqueraded');
      return true;
    case 'off-cluster': {
      const inside = family.localCIDR !== undefined && cidrContains(family.localCIDR, source);
      steps.push(inside ? `the source is in the cluster's ${family.localCIDR}: not masqueraded` : `the source is outside the cluster's ${family.localCIDR}: masqueraded`);
      return !inside;
    }
    case 'none':
      steps.push('no local CIDR is known: not masqueraded');
      return false;
  }
}

function forward(found: (verdict: TraceAnswer['verdict'], rest?: Partial<TraceAnswer>) => TraceAnswer, group: EndpointGroup, masquerade: boolean, source: string, steps: string[]): TraceAnswer {
  const total = group.endpoints.reduce((sum, endpoint) => sum + endpoint.weight, 0);
  const endpoints = group.endpoints.map((endpoint) => ({ ip: endpoint.ip, port: endpoint.port, probability: endpoint.weight / total }));
  steps.push(`${endpoints.length} endpoint${endpoints.length === 1 ? '' : 's'}, chosen by weight`);
  // Hairpin: an endpoint reaching its own Service, sent back to itself, is masqueraded on that path.
  if (!masquerade && group.endpoints.some((endpoint) => endpoint.onNode && endpoint.ip === source)) steps.push('the source is one of the endpoints: sent to itself, it is masqueraded (hairpin)');
  return found('forward', { masquerade, endpoints });
}
