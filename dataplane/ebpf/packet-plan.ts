// NodeRules → what the tc packet program's maps must hold (packets.bpf.c), using the endpoint groups
// the socket plan gave ids to, and the writes from one such state to the next. Pure but for
// applyPacketPlan. It follows the nftables backend's external chain: from outside, a Cluster policy
// masquerades and uses every endpoint; a Local policy keeps the client's address and uses this node's
// endpoints, or drops, while the cluster's own sources (the local CIDR) still use every endpoint; the
// cluster IP, reached through the node, masquerades as its group says. A load-balancer IP with source
// ranges lets only those sources through (none usable for its family: nobody). ClientIP affinity
// keeps a client on its endpoint for the Service's timeout.
import type { EndpointGroup, NodeRules, ServicePortRules } from '../../rules/node-rules.js';
import type { FrontendKey, Masquerade, PacketFrontend, RangeKey } from './layout.js';
import type { MapWriter, OpenMap, WriteSequence } from './map-writer.js';
import { nodePortAddresses } from './node-port-addresses.js';
import { frontendId, groupName, type SocketPlan } from './plan.js';

export interface PacketPlan {
  /** By `ip|port|protocol`. */
  frontends: Map<string, [FrontendKey, PacketFrontend]>;
  /** Where node ports apply. */
  nodeAddresses: string[];
  /** The SNAT address per family: the node's first address of the family. */
  masqueradeSources: Map<'IPv4' | 'IPv6', string>;
  /** The local CIDRs (detect-local). */
  localSources: string[];
  /** The source ranges of ranged frontends, by `ip|port|protocol|cidr`. */
  sourceRanges: Map<string, RangeKey>;
}

export interface PacketMaps {
  frontends: OpenMap<FrontendKey, PacketFrontend>;
  nodeAddresses: OpenMap<string, boolean>;
  masqueradeSources: OpenMap<'IPv4' | 'IPv6', string>;
  localSources: OpenMap<string, boolean>;
  sourceRanges: OpenMap<RangeKey, boolean>;
}

const MASQUERADE: Record<EndpointGroup['clusterIPMasquerade'], Masquerade> = { all: 'always', 'off-cluster': 'off-cluster', none: 'never' };

/** The packet maps for `rules` on a node with `addresses` (its interfaces' addresses; NodeRules has none). */
export function planPackets(rules: NodeRules, sockets: SocketPlan, addresses: string[]): PacketPlan {
  const plan: PacketPlan = { frontends: new Map(), nodeAddresses: [], masqueradeSources: new Map(), localSources: [], sourceRanges: new Map() };
  const id = (port: ServicePortRules, which: 'cluster' | 'local') => sockets.ids.get(groupName(port, which)) ?? 0;
  const put = (key: FrontendKey, value: PacketFrontend) => plan.frontends.set(frontendId(key), [key, value]);
  for (const family of rules.families) {
    const ofFamily = addresses.filter((address) => address.includes(':') === (family.family === 'IPv6'));
    if (ofFamily[0]) plan.masqueradeSources.set(family.family, ofFamily[0]);
    plan.nodeAddresses.push(...nodePortAddresses(ofFamily, family.nodePortAddresses));
    if (family.localCIDR) plan.localSources.push(family.localCIDR);
    for (const port of family.servicePorts) packetPortEntries(port, id, put, (key, range) => plan.sourceRanges.set(key, range));
  }
  return plan;
}

/** What one Service port puts into the packet maps: its frontends (to `put`) and its source ranges (to `range`). */
export function packetPortEntries(
  port: ServicePortRules, id: (port: ServicePortRules, which: 'cluster' | 'local') => number,
  put: (key: FrontendKey, value: PacketFrontend) => void, range: (id: string, range: RangeKey) => void,
): void {
  const key = (ip: string, portNumber = port.port): FrontendKey => ({ ip, port: portNumber, protocol: port.protocol });
  put(key(port.clusterIP), clusterIPFrontend(port, id));
  if (!port.external) return;
  const external = externalFrontend(port, id);
  const ranged = new Set(port.firewall?.loadBalancerIPs ?? []);
  for (const ip of port.externalIPs) {
    put(key(ip), { ...external, ranged: ranged.has(ip) });
    if (!ranged.has(ip)) continue;
    for (const cidr of port.firewall!.sourceRanges) range(`${frontendId(key(ip))}|${cidr}`, { frontend: key(ip), cidr });
  }
  if (port.nodePort > 0) put(key(port.clusterIP.includes(':') ? '::' : '0.0.0.0', port.nodePort), external);
}

function clusterIPFrontend(port: ServicePortRules, id: (port: ServicePortRules, which: 'cluster' | 'local') => number): PacketFrontend {
  if (port.internal === 'reject' || port.internal === 'drop') return { group: 0, verdict: port.internal, masquerade: 'never', ranged: false, localSourceGroup: 0, affinitySeconds: 0 };
  return {
    group: id(port, port.internal), verdict: 'serve', masquerade: MASQUERADE[port[port.internal]!.clusterIPMasquerade], ranged: false, localSourceGroup: 0, affinitySeconds: port.affinitySeconds,
  };
}

function externalFrontend(port: ServicePortRules, id: (port: ServicePortRules, which: 'cluster' | 'local') => number): PacketFrontend {
  const external = port.external!;
  if (external.policy === 'Cluster') {
    return external.verdict || !port.cluster
      ? { group: 0, verdict: external.verdict ?? 'reject', masquerade: 'never', ranged: false, localSourceGroup: 0, affinitySeconds: 0 }
      : { group: id(port, 'cluster'), verdict: 'serve', masquerade: 'always', ranged: false, localSourceGroup: 0, affinitySeconds: port.affinitySeconds };
  }
  const localSourceGroup = port.cluster ? id(port, 'cluster') : 0;
  return external.hasLocalEndpoints && port.local
    ? { group: id(port, 'local'), verdict: 'serve', masquerade: 'never', ranged: false, localSourceGroup, affinitySeconds: port.affinitySeconds }
    : { group: 0, verdict: external.verdict ?? 'drop', masquerade: 'never', ranged: false, localSourceGroup, affinitySeconds: port.affinitySeconds };
}

export const samePacketFrontend = (a: PacketFrontend | undefined, b: PacketFrontend) =>
  a !== undefined && a.group === b.group && a.verdict === b.verdict && a.masquerade === b.masquerade && a.ranged === b.ranged && a.localSourceGroup === b.localSourceGroup
  && a.affinitySeconds === b.affinitySeconds;

/**
 * Writes the difference between two packet plans, after the socket plan wrote the groups they point
 * at: new source ranges first (a frontend that becomes ranged finds its ranges there), changed and new
 * frontends, the node's addresses, SNAT sources and local CIDRs, then the removals. The number of
 * entries written and deleted.
 */
export async function applyPacketPlan(writer: MapWriter, maps: PacketMaps, previous: PacketPlan | undefined, next: PacketPlan): Promise<{ written: number; deleted: number }> {
  const writes = writer.inOrder();
  writePacketPlan(writes, maps, previous, next);
  return writes.done();
}

/** applyPacketPlan's writes, queued on `writes`. */
export function writePacketPlan(writes: WriteSequence, maps: PacketMaps, previous: PacketPlan | undefined, next: PacketPlan): void {
  writes.update(maps.sourceRanges, [...next.sourceRanges].filter(([key]) => !previous?.sourceRanges.has(key)).map(([, range]): [RangeKey, boolean] => [range, true]));
  writes.update(maps.frontends, [...next.frontends].filter(([key, [, value]]) => !samePacketFrontend(previous?.frontends.get(key)?.[1], value)).map(([, entry]) => entry));
  const sets = [[maps.nodeAddresses, next.nodeAddresses, previous?.nodeAddresses ?? []], [maps.localSources, next.localSources, previous?.localSources ?? []]] as const;
  for (const [map, wanted, before] of sets) writes.update(map, wanted.filter((entry) => !before.includes(entry)).map((entry): [string, boolean] => [entry, true]));
  writes.update(maps.masqueradeSources, [...next.masqueradeSources].filter(([family, ip]) => previous?.masqueradeSources.get(family) !== ip));
  writes.delete(maps.frontends, [...(previous?.frontends ?? [])].filter(([key]) => !next.frontends.has(key)).map(([, [key]]) => key));
  for (const [map, wanted, before] of sets) writes.delete(map, before.filter((entry) => !wanted.includes(entry)));
  writes.delete(maps.sourceRanges, [...(previous?.sourceRanges ?? [])].filter(([key]) => !next.sourceRanges.has(key)).map(([, range]) => range));
}
