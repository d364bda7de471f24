// One group's endpoints written as the product writes them: through applySocketPlan, from a group of
// `previousCount` endpoints to these (its write order is what the kernel tests check).
import type { WeightedEndpoint } from '../../dataplane/ebpf/groups.js';
import type { MapWriter } from '../../dataplane/ebpf/map-writer.js';
import { applySocketPlan, type SocketMaps, type SocketPlan } from '../../dataplane/ebpf/plan.js';

export async function writeGroup(writer: MapWriter, maps: Pick<SocketMaps, 'groups' | 'slots'>, id: number, endpoints: WeightedEndpoint[], previousCount: number): Promise<void> {
  // Weight 0 is never planned: every earlier endpoint reads as changed, so the whole group is written.
  const before = Array.from({ length: previousCount }, () => ({ ip: '0.0.0.0', port: 0, weight: 0 }));
  const plan = (group: WeightedEndpoint[]): SocketPlan => ({ frontends: new Map(), groups: new Map([[id, group]]), ids: new Map() });
  // No frontend in either plan: the frontends map is never written.
  await applySocketPlan(writer, maps as SocketMaps, previousCount ? plan(before) : undefined, plan(endpoints));
}
