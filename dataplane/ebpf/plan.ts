// NodeRules → what the socket programs' maps must hold, and the ordered writes from one such state to
// the next. The plan is pure; applySocketPlan is the only part that writes.
import type { EndpointGroup, FamilyRules, NodeRules, ServicePortRules } from '../../rules/node-rules.js';
import type { WeightedEndpoint } from './groups.js';
import { checkGroup, groupEntry } from './groups.js';
import type { Frontend, FrontendKey, Group, Slot, SlotKey } from './layout.js';
import type { MapWriter, OpenMap, WriteSequence } from './map-writer.js';
import { nodePortAddresses } from './node-port-addresses.js';

/** The maps' contents for one NodeRules, with the group ids handed on so that they stay put between syncs. */
export interface SocketPlan {
  /** By `ip|port|protocol`. */
  frontends: Map<string, [FrontendKey, Frontend]>;
  groups: Map<number, WeightedEndpoint[]>;
  /** Group id by groupName: a Service port's hash, family, and cluster or local (both families share the hash). */
  ids: Map<string, number>;
}

export interface SocketMaps {
  frontends: OpenMap<FrontendKey, Frontend>;
  groups: OpenMap<number, Group>;
  slots: OpenMap<SlotKey, Slot>;
}

/** The name a port's cluster or local group has in `SocketPlan.ids`, for every plan that uses the groups. */
export const groupName = (port: Pick<ServicePortRules, 'hash' | 'clusterIP'>, which: 'cluster' | 'local') =>
  `${port.hash}/${port.clusterIP.includes(':') ? 'IPv6' : 'IPv4'}/${which}`;

/** A frontend's key in a plan's map: `ip|port|protocol`. */
export const frontendId = (key: FrontendKey) => `${key.ip}|${key.port}|${key.protocol}`;

/**
 * What sockets of pods and node processes meet. The cluster IP leads where `internal` says; external
 * IPs and load-balancer IPs lead to the cluster group (from inside, even under a Local policy, as in
 * kube-proxy) or are refused when there is none, and so do node ports at the node's `addresses`
 * (where nodePortAddresses lets them answer; NodeRules does not know the node's interfaces). Left to
 * the packet path: load-balancer IPs with source ranges (connect() has no source address yet to check
 * them against).
 */
export function planSockets(rules: NodeRules, previous?: SocketPlan, addresses: readonly string[] = []): SocketPlan {
  const plan: SocketPlan = { frontends: new Map(), groups: new Map(), ids: new Map() };
  // Ids in use: named ones, and any group still in the maps (read back from the kernel, names unknown).
  const taken = new Set([...(previous?.ids.values() ?? []), ...(previous?.groups.keys() ?? [])]);
  let next = 1;
  const groupId = (port: ServicePortRules, which: 'cluster' | 'local', group: EndpointGroup): number => {
    const name = groupName(port, which);
    let id = plan.ids.get(name) ?? previous?.ids.get(name);
    if (id === undefined) {
      // A new group never takes an id the previous plan used: its old slots may still be in the maps.
      while (taken.has(next)) next += 1;
      id = next;
      taken.add(id);
    }
    plan.ids.set(name, id);
    // The rules' own list, not a copy of every endpoint (NodeRules are never changed once computed).
    if (!plan.groups.has(id)) plan.groups.set(id, group.endpoints);
    return id;
  };
  const put = (key: FrontendKey, value: Frontend) => plan.frontends.set(frontendId(key), [key, value]);
  for (const family of rules.families) {
    const nodePortIPs = familyNodePortIPs(family, addresses);
    for (const port of family.servicePorts) socketPortEntries(port, nodePortIPs, groupId, put);
  }
  return plan;
}

/** The node's addresses where a family's node ports answer on the socket path. */
export function familyNodePortIPs(family: FamilyRules, addresses: readonly string[]): string[] {
  return nodePortAddresses(addresses.filter((address) => address.includes(':') === (family.family === 'IPv6')), family.nodePortAddresses);
}

/** Names the id of a port's cluster or local group (and records its endpoints). */
type GroupId = (port: ServicePortRules, which: 'cluster' | 'local', group: EndpointGroup) => number;

/** What one Service port puts into the socket maps: its frontends (to `put`) and its groups (to `groupId`). */
export function socketPortEntries(port: ServicePortRules, nodePortIPs: readonly string[], groupId: GroupId, put: (key: FrontendKey, value: Frontend) => void): void {
  const key = (ip: string, portNumber = port.port): FrontendKey => ({ ip, port: portNumber, protocol: port.protocol });
  const affinitySeconds = port.affinitySeconds;
  const target = port.internal === 'cluster' || port.internal === 'local' ? port[port.internal] : undefined;
  if (target) put(key(port.clusterIP), { group: groupId(port, port.internal as 'cluster' | 'local', target), verdict: 'serve', affinitySeconds });
  else put(key(port.clusterIP), { group: 0, verdict: port.internal === 'drop' ? 'drop' : 'reject', affinitySeconds: 0 });
  const filtered = new Set(port.firewall?.loadBalancerIPs ?? []);
  const outward = [...port.externalIPs.filter((address) => !filtered.has(address)).map((ip) => key(ip)), ...(port.nodePort > 0 ? nodePortIPs.map((ip) => key(ip, port.nodePort)) : [])];
  for (const frontendKey of outward) {
    if (port.cluster?.endpoints.length) put(frontendKey, { group: groupId(port, 'cluster', port.cluster), verdict: 'serve', affinitySeconds });
    else put(frontendKey, { group: 0, verdict: 'reject', affinitySeconds: 0 });
  }
  // Every group gets its id here, those only the packet path uses too (packet-plan.ts).
  if (port.cluster) groupId(port, 'cluster', port.cluster);
  if (port.local) groupId(port, 'local', port.local);
}

export const sameEndpoints = (a: WeightedEndpoint[] | undefined, b: WeightedEndpoint[]) =>
  a !== undefined && a.length === b.length && a.every((endpoint, index) => endpoint.ip === b[index]!.ip && endpoint.port === b[index]!.port && endpoint.weight === b[index]!.weight);
export const sameFrontend = (a: Frontend | undefined, b: Frontend) => a !== undefined && a.group === b.group && a.verdict === b.verdict && a.affinitySeconds === b.affinitySeconds;

/**
 * Writes the difference between two plans in batches, step by step in the order that keeps the maps
 * consistent for a connect at any moment: slots of growing groups, then every changed group entry,
 * then slots of shrinking groups and their surplus, then frontends (now pointing at complete groups),
 * removed frontends, and last the groups nothing points at any more (unless `keepUnusedGroups`: the
 * packet frontends may still point at them; see node-plan.ts). Without `previous`, everything is
 * written and nothing removed. The number of map entries written and deleted.
 */
export async function applySocketPlan(
  writer: MapWriter, maps: SocketMaps, previous: SocketPlan | undefined, next: SocketPlan, options: { keepUnusedGroups?: boolean } = {},
): Promise<{ written: number; deleted: number }> {
  const writes = writer.inOrder();
  await writeSocketPlan(writes, maps, previous, next);
  if (!options.keepUnusedGroups) writeUnusedGroupRemovals(writes, maps, previous, next);
  return writes.done();
}

/** applySocketPlan's writes, but for the unused groups' removal, queued on `writes`. */
export async function writeSocketPlan(writes: WriteSequence, maps: SocketMaps, previous: SocketPlan | undefined, next: SocketPlan): Promise<void> {
  const changed = [...next.groups].filter(([id, endpoints]) => !sameEndpoints(previous?.groups.get(id), endpoints));
  // Every changed group checked before anything is written.
  for (const [, endpoints] of changed) checkGroup(endpoints);
  // The slots of growing groups are encoded as they are made and go out a batch at a time: the helper
  // writes one while the next is encoded (pause hands it each batch sent). Those of shrinking groups
  // wait for the group entries.
  const growing = writes.encoder(maps.slots);
  const shrinking: Array<[SlotKey, Slot]> = [];
  const surplus: SlotKey[] = [];
  const groups: Array<[number, Group]> = [];
  for (const [id, endpoints] of changed) {
    const previousCount = previous?.groups.get(id)?.length ?? 0;
    const group = endpoints.length >= previousCount
      ? groupEntry(endpoints, (ip, port, cumulative, index) => growing.add({ group: id, index }, { ip, port, cumulative }))
      : groupEntry(endpoints, (ip, port, cumulative, index) => shrinking.push([{ group: id, index }, { ip, port, cumulative }]));
    for (let index = group.count; index < previousCount; index++) surplus.push({ group: id, index });
    groups.push([id, group]);
    await growing.pause();
  }
  growing.flush();
  const frontends = [...next.frontends].filter(([id, [, value]]) => !sameFrontend(previous?.frontends.get(id)?.[1], value)).map(([, entry]) => entry);
  const goneFrontends = [...(previous?.frontends ?? [])].filter(([id]) => !next.frontends.has(id)).map(([, [key]]) => key);

  writes.update(maps.groups, groups);
  writes.update(maps.slots, shrinking);
  writes.delete(maps.slots, surplus);
  writes.update(maps.frontends, frontends);
  writes.delete(maps.frontends, goneFrontends);
}

/** Deletes the groups of `previous` that `next` has not, and their slots; the number of entries deleted. */
export async function removeUnusedGroups(writer: MapWriter, maps: SocketMaps, previous: SocketPlan | undefined, next: SocketPlan): Promise<number> {
  const writes = writer.inOrder();
  writeUnusedGroupRemovals(writes, maps, previous, next);
  return (await writes.done()).deleted;
}

/** removeUnusedGroups's deletions, queued on `writes`. */
export function writeUnusedGroupRemovals(writes: WriteSequence, maps: SocketMaps, previous: SocketPlan | undefined, next: SocketPlan): void {
  const gone = [...(previous?.groups ?? [])].filter(([id]) => !next.groups.has(id));
  writes.delete(maps.groups, gone.map(([id]) => id));
  writes.delete(maps.slots, gone.flatMap(([id, endpoints]) => endpoints.map((_, index) => ({ group: id, index }))));
}
