// Which UDP conntrack entries must go after a change: UDP has no connection end, so a client keeps
// sending to a removed endpoint until its entry is deleted (kube-proxy's conntrack reconciler does the same).
import type { NodeRules, ServicePortRules } from '../../rules/node-rules.js';
import type { StaleFlow } from '../../rules/stale-flow.js';
import { findPort, splitPortKey, type PortChanges } from '../../rules/port-changes.js';

/** The UDP flows to delete when going from `previous` to `next` rules; only ports in `changed` can have any. */
export function staleUDPFlows(previous: NodeRules | undefined, next: NodeRules, changed: PortChanges = 'all'): StaleFlow[] {
  if (!previous) return [];
  const flows: StaleFlow[] = [];
  for (const family of next.families) {
    const before = previous.families.find((f) => f.family === family.family);
    if (!before) continue;
    const ports = changed === 'all'
      ? family.servicePorts
      : [...changed].map(splitPortKey).filter((key) => key.family === family.family).flatMap(({ id }) => findPort(family, id) ?? []);
    for (const port of ports.filter((candidate) => candidate.protocol === 'udp')) {
      const old = findPort(before, port.id);
      if (!old) continue;
      // The Service port's own entries: its address and port (other ports of the address keep theirs).
      const destinations = (dstNat?: string) => [
        { family: family.family, origDst: port.clusterIP, origPortDst: port.port, dstNat },
        ...port.externalIPs.map((ip) => ({ family: family.family, origDst: ip, origPortDst: port.port, dstNat })),
        ...(port.nodePort > 0 ? [{ family: family.family, origPortDst: port.nodePort, dstNat }] : []),
      ];
      if (endpointIPs(old).size === 0 && endpointIPs(port).size > 0) {
        // Packets sent while there was no endpoint left entries without NAT that would keep matching.
        flows.push(...destinations());
        continue;
      }
      // Only endpoints that stopped serving: one this node no longer picks for new flows (terminating,
      // another zone's, another policy) still answers the flows it has.
      const serving = new Set(port.servingEndpoints);
      for (const ip of endpointIPs(old)) if (!serving.has(ip)) flows.push(...destinations(ip));
    }
  }
  return flows.map((flow) => Object.fromEntries(Object.entries(flow).filter(([, value]) => value !== undefined)) as unknown as StaleFlow);
}

function endpointIPs(port: ServicePortRules): Set<string> {
  return new Set([...(port.cluster?.endpoints ?? []), ...(port.local?.endpoints ?? [])].map((endpoint) => endpoint.ip));
}
