// Which UDP conntrack entries must go after a change: UDP has no connection end, so a client keeps
// sending to a removed endpoint until its entry is deleted (kube-proxy's conntrack reconciler does the same).
import type { NodeRules, ServicePortRules } from '../../rules/node-rules.js';
import type { StaleFlow } from '../../rules/stale-flow.js';

/** The UDP flows to delete when going from `previous` to `next` rules. */
export function staleUDPFlows(previous: NodeRules | undefined, next: NodeRules): StaleFlow[] {
  if (!previous) return [];
  const flows: StaleFlow[] = [];
  for (const family of next.families) {
    const before = new Map(previous.families.find((f) => f.family === family.family)?.servicePorts.map((port) => [port.id, port]) ?? []);
    for (const port of family.servicePorts.filter((candidate) => candidate.protocol === 'udp')) {
      const old = before.get(port.id);
      // The same object: compute reused the port because nothing about it changed.
      if (!old || old === port) continue;
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
