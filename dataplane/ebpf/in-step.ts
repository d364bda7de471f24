// Whether the kernel's maps, read back as a summary (read-back.ts), hold a plan made over their ids:
// every entry of every map the same, the slots by their digest. `ferry diff` lists both sides only
// when they do not. Pure.
import { entriesDigest } from './digest.js';
import { groupSlots } from './groups.js';
import { MAPS, type Slot, type SlotKey } from './layout.js';
import type { NodePlan } from './node-plan.js';
import { samePacketFrontend } from './packet-plan.js';
import { sameFrontend } from './plan.js';
import type { Summary } from './read-back.js';

const sameKeys = (a: Map<unknown, unknown>, b: Map<unknown, unknown>) => a.size === b.size && [...a.keys()].every((key) => b.has(key));
const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && new Set([...a, ...b]).size === a.length;

export function holdsPlan(kernel: Summary, plan: NodePlan): boolean {
  const { sockets, packets } = kernel.plan;
  if (!sameKeys(sockets.frontends, plan.sockets.frontends) || !sameKeys(packets.frontends, plan.packets.frontends)) return false;
  for (const [id, [, value]] of plan.sockets.frontends) if (!sameFrontend(sockets.frontends.get(id)![1], value)) return false;
  for (const [id, [, value]] of plan.packets.frontends) if (!samePacketFrontend(packets.frontends.get(id)![1], value)) return false;
  if (!sameKeys(packets.sourceRanges, plan.packets.sourceRanges) || !sameSet(packets.nodeAddresses, plan.packets.nodeAddresses)) return false;
  if (!sameSet(packets.localSources, plan.packets.localSources) || !sameKeys(packets.masqueradeSources, plan.packets.masqueradeSources)) return false;
  for (const [family, ip] of plan.packets.masqueradeSources) if (packets.masqueradeSources.get(family) !== ip) return false;

  if (!sameKeys(kernel.groups, plan.sockets.groups)) return false;
  const slots: Array<[SlotKey, Slot]> = [];
  for (const [id, endpoints] of plan.sockets.groups) {
    const { group, slots: entries } = groupSlots(endpoints);
    const held = kernel.groups.get(id)!;
    if (held.count !== group.count || held.total !== group.total) return false;
    entries.forEach((slot, index) => slots.push([{ group: id, index }, slot]));
  }
  const digest = entriesDigest(MAPS.slots, slots);
  return digest.count === kernel.slots.count && digest.digest === kernel.slots.digest;
}
