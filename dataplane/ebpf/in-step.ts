// Whether the kernel's maps, summed by the map writer (read-back.ts readNodeSummary), hold a plan: what
// every frontend serves the same by digest (group ids left out, so the plan needs none of the
// kernel's), as many groups and slots, and the small packet maps the same. `ferry diff` lists both
// sides only when they differ. Pure.
import { servedDigest } from './digest.js';
import { MAPS } from './layout.js';
import { slotCount, type NodePlan } from './node-plan.js';
import { GROUP_WORDS, type Summary } from './read-back.js';

const sameKeys = (a: Map<unknown, unknown>, b: Map<unknown, unknown>) => a.size === b.size && [...a.keys()].every((key) => b.has(key));
const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && new Set([...a, ...b]).size === a.length;
const same = (a: { count: number; digest: string }, b: { count: number; digest: string }) => a.count === b.count && a.digest === b.digest;

export function holdsPlan(kernel: Summary, plan: NodePlan): boolean {
  const held = kernel.packetSets;
  const { packets, sockets } = plan;
  if (!sameKeys(held.sourceRanges, packets.sourceRanges) || !sameSet(held.nodeAddresses, packets.nodeAddresses) || !sameSet(held.localSources, packets.localSources)) return false;
  if (!sameKeys(held.masqueradeSources, packets.masqueradeSources) || [...packets.masqueradeSources].some(([family, ip]) => held.masqueradeSources.get(family) !== ip)) return false;
  if (kernel.groups !== sockets.groups.size || kernel.slots !== slotCount(plan)) return false;
  const endpoints = (id: number) => sockets.groups.get(id);
  return same(kernel.sockets, servedDigest(MAPS.frontends, [...sockets.frontends.values()], GROUP_WORDS.sockets, endpoints))
    && same(kernel.packets, servedDigest(MAPS.packet_frontends, [...packets.frontends.values()], GROUP_WORDS.packets, endpoints));
}
