// An endpoint group as the socket programs read it: a group entry {count, total} and slots 0..count-1
// with cumulative weights, written in the order that keeps every slot a connect can pick present.
import type { Group, Slot, SlotKey } from './layout.js';
import type { MapWriter, OpenMap } from './map-writer.js';

/** An endpoint and its share of new connections (a positive integer, as in NodeRules). */
export interface WeightedEndpoint { ip: string; port: number; weight: number }

/** The group entry and slots for these endpoints, in their order. */
export function groupSlots(endpoints: WeightedEndpoint[]): { group: Group; slots: Slot[] } {
  let total = 0;
  const slots = endpoints.map(({ ip, port, weight }) => {
    if (!Number.isInteger(weight) || weight < 1) throw new Error(`ferry eBPF: endpoint ${ip}:${port} has weight ${weight}, not a positive integer`);
    total += weight;
    return { ip, port, cumulative: total };
  });
  if (total > 0xffffffff) throw new Error(`ferry eBPF: the weights of a group add up to ${total}, more than 32 bits hold`);
  if (slots.length > 65536) throw new Error(`ferry eBPF: ${slots.length} endpoints in one group, the programs search 2^16 at most`);
  return { group: { count: slots.length, total }, slots };
}

/**
 * Replaces group `id`'s endpoints. The programs read {count} first and then slots below count, so a
 * growing group gets its slots before its count, and a shrinking one its count before its surplus
 * slots go. In between, a connect may see new weights under the old total (or the reverse): it then
 * picks with slightly wrong odds, but always a slot that exists.
 */
export async function writeGroup(
  writer: MapWriter, maps: { groups: OpenMap<number, Group>; slots: OpenMap<SlotKey, Slot> },
  id: number, endpoints: WeightedEndpoint[], previousCount: number,
): Promise<void> {
  const { group, slots } = groupSlots(endpoints);
  const slotEntries = slots.map((slot, index) => [{ group: id, index }, slot] as const);
  if (group.count >= previousCount) {
    await writer.update(maps.slots, slotEntries);
    await writer.update(maps.groups, [[id, group]]);
    return;
  }
  await writer.update(maps.groups, [[id, group]]);
  await writer.update(maps.slots, slotEntries);
  const surplus = Array.from({ length: previousCount - group.count }, (_, offset) => ({ group: id, index: group.count + offset }));
  await writer.delete(maps.slots, surplus);
}
