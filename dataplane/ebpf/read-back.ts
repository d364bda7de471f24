// The maps as the kernel holds them, read back into a NodePlan (group ids as found, names unknown): what
// `ferry diff` lists and what a full sync or the periodic resync repairs from; or as a summary the map
// writer sums, what `ferry diff` compares first.
import type { WeightedEndpoint } from './groups.js';
import type { MapWriter, Served } from './map-writer.js';
import type { NodeMaps, NodePlan } from './node-plan.js';
import type { PacketPlan } from './packet-plan.js';
import { frontendId } from './plan.js';

/** What a group's slots hold beyond the plan's shape: slots missing below its count. */
export interface ReadBack {
  plan: NodePlan;
  /** Group ids whose count names a slot that is not there. */
  brokenGroups: number[];
}

/**
 * The maps as the helper sums them: what each table's frontends serve (digest.ts), and how many groups
 * and slots there are, with the small packet maps whole. Enough to tell whether the kernel holds a
 * plan (in-step.ts) without reading a frontend, a group or a slot into TypeScript.
 */
export interface Summary {
  sockets: Served;
  packets: Served;
  groups: number;
  slots: number;
  /** The packet plan's small maps, read back; its frontends left empty. */
  packetSets: PacketPlan;
}

/** The value words of each table's frontends that hold group ids (layout.ts: group; group and local_source_group). */
export const GROUP_WORDS = { sockets: [0], packets: [0, 2] } as const;

export async function readNodeSummary(writer: MapWriter, maps: NodeMaps): Promise<Summary> {
  const { frontends, groups, slots } = maps.sockets;
  const [served, nodeAddresses, masqueradeSources, localSources, sourceRanges] = await Promise.all([
    writer.served(groups, slots, [[frontends, GROUP_WORDS.sockets], [maps.packets.frontends, GROUP_WORDS.packets]]),
    writer.dump(maps.packets.nodeAddresses), writer.dump(maps.packets.masqueradeSources), writer.dump(maps.packets.localSources), writer.dump(maps.packets.sourceRanges),
  ]);
  const { packets: packetSets } = nodePlanOf({ frontends: [], packetFrontends: [], nodeAddresses, masqueradeSources, localSources, sourceRanges, groups: new Map() });
  return { sockets: served.tables[0]!, packets: served.tables[1]!, groups: served.groups, slots: served.slots, packetSets };
}

/** The maps read back but for the slots: frontends with their group ids, and the groups' ids (their endpoints left empty). */
export async function readNodeIds(writer: MapWriter, maps: NodeMaps): Promise<NodePlan> {
  const [groups, rest] = await Promise.all([writer.dump(maps.sockets.groups), readFrontends(writer, maps)]);
  return nodePlanOf({ ...rest, groups: new Map(groups.map(([id]) => [id, []])) });
}

async function readFrontends(writer: MapWriter, maps: NodeMaps) {
  const [frontends, packetFrontends, nodeAddresses, masqueradeSources, localSources, sourceRanges] = await Promise.all([
    writer.dump(maps.sockets.frontends), writer.dump(maps.packets.frontends), writer.dump(maps.packets.nodeAddresses),
    writer.dump(maps.packets.masqueradeSources), writer.dump(maps.packets.localSources), writer.dump(maps.packets.sourceRanges),
  ]);
  return { frontends, packetFrontends, nodeAddresses, masqueradeSources, localSources, sourceRanges };
}

function nodePlanOf(read: Awaited<ReturnType<typeof readFrontends>> & { groups: Map<number, WeightedEndpoint[]> }): NodePlan {
  const { frontends, packetFrontends, nodeAddresses, masqueradeSources, localSources, sourceRanges, groups } = read;
  return {
    sockets: { frontends: new Map(frontends.map((entry) => [frontendId(entry[0]), entry])), groups, ids: new Map() },
    packets: {
      frontends: new Map(packetFrontends.map((entry) => [frontendId(entry[0]), entry])),
      nodeAddresses: nodeAddresses.map(([ip]) => ip),
      // An array map has both entries; the all-zero address is an unset one.
      masqueradeSources: new Map(masqueradeSources.filter(([, ip]) => ip !== '::')),
      localSources: localSources.map(([cidr]) => cidr),
      sourceRanges: new Map(sourceRanges.map(([range]) => [`${frontendId(range.frontend)}|${range.cidr}`, range])),
    },
  };
}

export async function readNodePlan(writer: MapWriter, maps: NodeMaps): Promise<ReadBack> {
  const [groups, slots, rest] = await Promise.all([writer.dump(maps.sockets.groups), writer.dump(maps.sockets.slots), readFrontends(writer, maps)]);
  const slotsOf = new Map<string, { ip: string; port: number; cumulative: number }>(slots.map(([key, value]) => [`${key.group}/${key.index}`, value]));
  const brokenGroups: number[] = [];
  const endpointGroups = new Map<number, WeightedEndpoint[]>();
  for (const [id, group] of groups) {
    const endpoints: WeightedEndpoint[] = [];
    let below = 0;
    for (let index = 0; index < group.count; index++) {
      const slot = slotsOf.get(`${id}/${index}`);
      if (!slot) {
        brokenGroups.push(id);
        break;
      }
      endpoints.push({ ip: slot.ip, port: slot.port, weight: slot.cumulative - below });
      below = slot.cumulative;
    }
    endpointGroups.set(id, endpoints);
  }
  return {
    plan: nodePlanOf({ ...rest, groups: endpointGroups }),
    brokenGroups,
  };
}
