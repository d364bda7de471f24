// An endpoint group as the socket programs read it: a group entry {count, total} and slots 0..count-1
// with cumulative weights (plan.ts's applySocketPlan writes them in the order that keeps every slot a
// connect can pick present).
import type { Group, Slot } from './layout.js';

/** An endpoint and its share of new connections (a positive integer, as in NodeRules). */
export interface WeightedEndpoint { ip: string; port: number; weight: number }

/** Throws unless the programs can serve these endpoints as one group: positive integer weights whose sum fits 32 bits, at most 2^16 of them. */
export function checkGroup(endpoints: WeightedEndpoint[]): void {
  let total = 0;
  for (const { ip, port, weight } of endpoints) {
    if (!Number.isInteger(weight) || weight < 1) throw new Error(`ferry eBPF: endpoint ${ip}:${port} has weight ${weight}, not a positive integer`);
    total += weight;
  }
  if (total > 0xffffffff) throw new Error(`ferry eBPF: the weights of a group add up to ${total}, more than 32 bits hold`);
  if (endpoints.length > 65536) throw new Error(`ferry eBPF: ${endpoints.length} endpoints in one group, the programs search 2^16 at most`);
}

/**
 * The group entry for these endpoints (checkGroup's), each slot told to `visit` in order: its endpoint,
 * cumulative weight and index (a full sync encodes 100,000 of them straight into its batches).
 */
export function groupEntry(endpoints: WeightedEndpoint[], visit?: (ip: string, port: number, cumulative: number, index: number) => void): Group {
  checkGroup(endpoints);
  let total = 0;
  endpoints.forEach(({ ip, port, weight }, index) => {
    total += weight;
    visit?.(ip, port, total, index);
  });
  return { count: endpoints.length, total };
}

/** The group entry and slots for these endpoints, in their order. */
export function groupSlots(endpoints: WeightedEndpoint[]): { group: Group; slots: Slot[] } {
  const slots: Slot[] = [];
  const group = groupEntry(endpoints, (ip, port, cumulative) => slots.push({ ip, port, cumulative }));
  return { group, slots };
}
