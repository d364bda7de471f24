// Both eBPF paths' maps for one NodeRules (plan.ts for the sockets, packet-plan.ts for tc), the ids a
// kernel's maps already use adopted, and the ordered writes from one such state to the next. Pure but
// for writeNodePlan.
import { join } from 'node:path';
import type { NodeRules } from '../../rules/node-rules.js';
import { MAPS, type MapLayout } from './layout.js';
import { closedMap, type MapWriter } from './map-writer.js';
import { planPackets, samePacketFrontend, writePacketPlan, type PacketMaps, type PacketPlan } from './packet-plan.js';
import { planSockets, removeUnusedGroups, sameEndpoints, sameFrontend, writeSocketPlan, writeUnusedGroupRemovals, type SocketMaps, type SocketPlan } from './plan.js';

export interface NodePlan {
  sockets: SocketPlan;
  packets: PacketPlan;
}

export interface NodeMaps {
  sockets: SocketMaps;
  packets: PacketMaps;
}

/** The maps' contents on a node with `addresses`; group ids stay as `previous` had them. */
export function planNode(rules: NodeRules, addresses: readonly string[], previous?: SocketPlan): NodePlan {
  const sockets = planSockets(rules, previous, addresses);
  return { sockets, packets: planPackets(rules, sockets, [...addresses]) };
}

/**
 * A plan (planNode's) with the group ids of maps read back from a kernel (which do not know names): a
 * group takes the id that the kernel's frontend at the same address already points to, so that an
 * unchanged kernel needs no write; every other group an id no kernel group has. `adopt: false` gives
 * every group such an id (a replace writes its groups beside the kernel's).
 */
export function planOverKernel(fresh: NodePlan, kernel: NodePlan, options: { adopt?: boolean } = {}): NodePlan {
  // Maps that hold nothing (a first apply) have no ids to adopt or avoid: the fresh plan is the plan.
  if (kernel.sockets.groups.size === 0 && kernel.sockets.frontends.size === 0 && kernel.packets.frontends.size === 0) return fresh;
  const ids = new Map<number, number>();
  const used = new Set<number>();
  const adopt = (freshGroup: number, kernelGroup: number | undefined) => {
    if (!freshGroup || !kernelGroup || ids.has(freshGroup) || used.has(kernelGroup) || !kernel.sockets.groups.has(kernelGroup)) return;
    ids.set(freshGroup, kernelGroup);
    used.add(kernelGroup);
  };
  if (options.adopt !== false) {
    for (const [id, [, value]] of fresh.sockets.frontends) adopt(value.group, kernel.sockets.frontends.get(id)?.[1].group);
    for (const [id, [, value]] of fresh.packets.frontends) {
      const held = kernel.packets.frontends.get(id)?.[1];
      adopt(value.group, held?.group);
      adopt(value.localSourceGroup, held?.localSourceGroup);
    }
  }
  let next = 1;
  for (const id of fresh.sockets.groups.keys()) {
    if (ids.has(id)) continue;
    while (used.has(next) || kernel.sockets.groups.has(next)) next += 1;
    ids.set(id, next);
    used.add(next);
  }
  return withGroupIds(fresh, (id) => (id ? ids.get(id)! : 0));
}

/** The plan with every group id `id` as `to(id)` (0, no group, stays 0). */
function withGroupIds(plan: NodePlan, to: (id: number) => number): NodePlan {
  const { sockets, packets } = plan;
  return {
    sockets: {
      frontends: new Map([...sockets.frontends].map(([key, [frontendKey, value]]) => [key, [frontendKey, { ...value, group: to(value.group) }]])),
      groups: new Map([...sockets.groups].map(([id, endpoints]) => [to(id), endpoints])),
      ids: new Map([...sockets.ids].map(([name, id]) => [name, to(id)])),
    },
    packets: {
      ...packets,
      frontends: new Map([...packets.frontends].map(([key, [frontendKey, value]]) => [key, [frontendKey, { ...value, group: to(value.group), localSourceGroup: to(value.localSourceGroup) }]])),
    },
  };
}

/** The maps pinned under `pinDir` as loadSocketPrograms and loadPacketProgram pin them; `packets: false` leaves the packet maps closed (empty). */
export async function openNodeMaps(writer: MapWriter, pinDir: string, options: { packets?: boolean } = {}): Promise<NodeMaps> {
  const socketMap = <K, V>(layout: MapLayout<K, V>) => writer.open(layout, join(pinDir, 'maps', layout.name));
  const packetMap = <K, V>(layout: MapLayout<K, V>) => (options.packets === false ? closedMap(layout) : writer.open(layout, join(pinDir, 'packet-maps', layout.name)));
  // Every open sent at once: the helper answers them in order, without a round trip each.
  const [frontends, groups, slots, packetFrontends, nodeAddresses, masqueradeSources, localSources, sourceRanges] = await Promise.all([
    socketMap(MAPS.frontends), socketMap(MAPS.groups), socketMap(MAPS.slots), packetMap(MAPS.packet_frontends), packetMap(MAPS.node_addresses),
    packetMap(MAPS.masquerade_sources), packetMap(MAPS.local_sources), packetMap(MAPS.source_ranges),
  ]);
  return {
    sockets: { frontends, groups, slots },
    packets: { frontends: packetFrontends, nodeAddresses, masqueradeSources, localSources, sourceRanges },
  };
}

/** The slots of a plan's groups. */
export const slotCount = (plan: NodePlan | undefined) => [...(plan?.sockets.groups.values() ?? [])].reduce((sum, endpoints) => sum + endpoints.length, 0);

/**
 * The maps that hold more entries than they can: the plan's (`slots` of them, where the caller keeps
 * the count), and `beside`'s groups and slots too (a replace writes its groups beside the old ones).
 */
function overCapacity(maps: NodeMaps, plan: NodePlan, beside?: NodePlan, slots = slotCount(plan)): Array<[OpenMapLike, number]> {
  const needs: Array<[OpenMapLike, number]> = [
    [maps.sockets.frontends, plan.sockets.frontends.size], [maps.sockets.groups, plan.sockets.groups.size + (beside?.sockets.groups.size ?? 0)],
    [maps.sockets.slots, slots + (beside ? slotCount(beside) : 0)], [maps.packets.frontends, plan.packets.frontends.size], [maps.packets.sourceRanges, plan.packets.sourceRanges.size],
  ];
  return needs.filter(([map, count]) => map.path !== '' && count > map.maxEntries);
}

/** Throws, before anything is written, when the plan holds more entries than a map can: the kernel would fail the batch midway. */
export function checkCapacity(maps: NodeMaps, plan: NodePlan, slots?: number): void {
  const over = overCapacity(maps, plan, undefined, slots);
  if (over.length) throw new Error(`ferry eBPF: the rules need more entries than the maps hold (nothing was written): ${over.map(([map, count]) => `${map.layout.name} ${count} > ${map.maxEntries}`).join(', ')}`);
}

/**
 * Whether a full sync replaces rather than updates: the kernel's maps hold frontends, and more than
 * half of the frontends (of both paths, of both plans together) differ between them and the plan over
 * their ids, in their entry or in the endpoints of a group they lead to. A restart over unchanged maps,
 * or a resync repairing a few entries, updates in place.
 */
export function mostlyDifferent(kernel: NodePlan, over: NodePlan): boolean {
  if (kernel.sockets.frontends.size + kernel.packets.frontends.size === 0) return false;
  const sameGroup = (a: number, b: number) => a === b && (a === 0 || sameEndpoints(kernel.sockets.groups.get(a), over.sockets.groups.get(b) ?? []));
  let differing = 0;
  let all = 0;
  const count = <V>(before: Map<string, [unknown, V]>, after: Map<string, [unknown, V]>, same: (a: V | undefined, b: V) => boolean) => {
    for (const [key, [, value]] of after) {
      all += 1;
      if (!same(before.get(key)?.[1], value)) differing += 1;
    }
    for (const key of before.keys()) {
      if (after.has(key)) continue;
      all += 1;
      differing += 1;
    }
  };
  count(kernel.sockets.frontends, over.sockets.frontends, (a, b) => sameFrontend(a, b) && sameGroup(a!.group, b.group));
  count(kernel.packets.frontends, over.packets.frontends, (a, b) => samePacketFrontend(a, b) && sameGroup(a!.group, b.group) && sameGroup(a!.localSourceGroup, b.localSourceGroup));
  return differing * 2 > all;
}

/**
 * A full sync's writes of `planned` (planNode's) over the maps read back as `kernel`. Mostly the
 * same: the plan keeps the kernel's group ids and only the difference is written. Mostly different
 * (and room for both): a replace. Its groups take ids the kernel's do not use and are written beside them, its frontends go
 * into fresh tables, and each table is swapped in with one write (the socket path's, then the packet
 * path's), so a connect or a new flow meets the old node or the new one, never a mix; then the old
 * groups go. `check` sees the plan before anything is written.
 */
export async function syncNodePlan(
  writer: MapWriter, maps: NodeMaps, kernel: NodePlan, planned: NodePlan, check: (plan: NodePlan) => void,
): Promise<{ plan: NodePlan; written: number; deleted: number; replaced: boolean }> {
  const over = planOverKernel(planned, kernel);
  const fresh = mostlyDifferent(kernel, over) ? planOverKernel(planned, kernel, { adopt: false }) : undefined;
  if (!fresh || overCapacity(maps, fresh, kernel).length) {
    check(over);
    return { plan: over, ...(await writeNodePlan(writer, maps, kernel, over)), replaced: false };
  }
  check(fresh);
  const staged: NodeMaps = {
    sockets: { ...maps.sockets, frontends: await writer.stage(maps.sockets.frontends) },
    packets: { ...maps.packets, frontends: await writer.stage(maps.packets.frontends) },
  };
  // Written over what the kernel holds, but for the frontends: the staged tables are empty.
  const writes = writer.inOrder();
  await writeSocketPlan(writes, staged.sockets, { ...kernel.sockets, frontends: new Map() }, fresh.sockets);
  writePacketPlan(writes, staged.packets, { ...kernel.packets, frontends: new Map() }, fresh.packets);
  const { written, deleted } = await writes.done();
  await writer.install(maps.sockets.frontends);
  await writer.install(maps.packets.frontends);
  const groups = await removeUnusedGroups(writer, maps.sockets, kernel.sockets, fresh.sockets);
  // The old tables' entries went with them.
  const dropped = kernel.sockets.frontends.size + kernel.packets.frontends.size;
  return { plan: fresh, written, deleted: deleted + groups + dropped, replaced: true };
}

type OpenMapLike = { path: string; maxEntries: number; layout: { name: string } };

/** Writes the difference: groups and socket frontends, packet frontends, then the groups no frontend of either uses; entries written and deleted. */
export async function writeNodePlan(writer: MapWriter, maps: NodeMaps, previous: NodePlan | undefined, next: NodePlan): Promise<{ written: number; deleted: number }> {
  checkCapacity(maps, next);
  const writes = writer.inOrder();
  await writeSocketPlan(writes, maps.sockets, previous?.sockets, next.sockets);
  writePacketPlan(writes, maps.packets, previous?.packets, next.packets);
  writeUnusedGroupRemovals(writes, maps.sockets, previous?.sockets, next.sockets);
  return writes.done();
}
