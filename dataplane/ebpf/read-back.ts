// The maps as the kernel holds them, read back into a NodePlan (group ids as found, names unknown): what
// `ferry diff` lists and what a full sync or the periodic resync repairs from.
import type { WeightedEndpoint } from './groups.js';
import type { Group } from './layout.js';
import type { MapWriter } from './map-writer.js';
import type { NodeMaps, NodePlan } from './node-plan.js';
import { frontendId } from './plan.js';

/** What a group's slots hold beyond the plan's shape: slots missing below its count. */
export interface ReadBack {
  plan: NodePlan;
  /** Group ids whose count names a slot that is not there. */
  brokenGroups: number[];
}

/**
 * The maps with the slots only counted and digested by the helper (digest.ts), the groups as their
 * entries: enough to tell whether the kernel holds a plan (in-step.ts) without reading every slot.
 */
export interface Summary {
  /** The maps read back, each group without its endpoints (they are the slots). */
  plan: NodePlan;
  groups: Map<number, Group>;
  slots: { count: number; digest: string };
}

export async function readNodeSummary(writer: MapWriter, maps: NodeMaps): Promise<Summary> {
  const [groups, slots, rest] = await Promise.all([writer.dump(maps.sockets.groups), writer.digest(maps.sockets.slots), readFrontends(writer, maps)]);
  const plan = nodePlanOf({ ...rest, groups: new Map(groups.map(([id]) => [id, []])) });
  return { plan, groups: new Map(groups), slots };
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
