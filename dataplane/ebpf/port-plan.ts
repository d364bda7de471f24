// A partial sync's plan: what the changed Service ports put into the maps before and after the change,
// and the node's plan with those entries swapped, so that a sync after one change plans and writes that
// change and nothing else. Pure but for updating the plan it is given (the session's record of what the
// maps hold).
import type { NodeRules, ServicePortRules } from '../../rules/node-rules.js';
import { findPort, splitPortKey } from '../../rules/port-changes.js';
import type { FrontendKey } from './layout.js';
import type { NodePlan } from './node-plan.js';
import { packetPortEntries } from './packet-plan.js';
import { familyNodePortIPs, frontendId, groupName, socketPortEntries } from './plan.js';

/** The entries of the changed ports: `before` as the maps hold them, `after` as they must be. */
export interface PlanChange {
  before: NodePlan;
  after: NodePlan;
}

/**
 * The entries the ports in `changed` put into the maps under `previous` and under `next`, and `plan`
 * (the plan of `previous`) turned into the plan of `next` in place. A group keeps its id while its port
 * keeps it; a new one takes `allocate()`, an id never used before, so no old slot can be under it.
 * (compute gives every frontend one port: ClusterIndex.ownerOf; only two Services on one cluster IP
 * and port, which the API never allows, would share one.)
 */
export function planPortChanges(
  plan: NodePlan, previous: NodeRules, next: NodeRules, changed: ReadonlySet<string>, addresses: readonly string[], allocate: () => number,
): PlanChange {
  const part = (): NodePlan => ({
    sockets: { frontends: new Map(), groups: new Map(), ids: new Map() },
    // The node-wide entries stay as they are: the same on both sides, so nothing of them is written.
    packets: { ...plan.packets, frontends: new Map(), sourceRanges: new Map() },
  });
  const [before, after] = [part(), part()];
  const ports = [...changed].map(splitPortKey).map(({ family, id }) => {
    const [was, is] = [previous, next].map((rules) => rules.families.find((candidate) => candidate.family === family));
    return { old: was && findPort(was, id), port: is && findPort(is, id), nodePortIPs: is ? familyNodePortIPs(is, addresses) : familyNodePortIPs(was!, addresses) };
  });

  for (const { old, nodePortIPs } of ports) {
    if (!old) continue;
    // As the maps hold them: the ids the plan gave, the values it wrote.
    socketPortEntries(old, nodePortIPs, (port, which) => {
      const id = plan.sockets.ids.get(groupName(port, which)) ?? 0;
      before.sockets.ids.set(groupName(port, which), id);
      const endpoints = plan.sockets.groups.get(id);
      if (endpoints) before.sockets.groups.set(id, endpoints);
      return id;
    }, (key) => copy(plan.sockets.frontends, before.sockets.frontends, key));
    packetPortEntries(old, heldId(plan), (key) => copy(plan.packets.frontends, before.packets.frontends, key), (id) => {
      const range = plan.packets.sourceRanges.get(id);
      if (range) before.packets.sourceRanges.set(id, range);
    });
  }
  for (const { port, nodePortIPs } of ports) {
    if (!port) continue;
    socketPortEntries(port, nodePortIPs, (group, which, endpoints) => {
      const name = groupName(group, which);
      const id = after.sockets.ids.get(name) ?? plan.sockets.ids.get(name) ?? allocate();
      after.sockets.ids.set(name, id);
      after.sockets.groups.set(id, endpoints.endpoints.map(({ ip, port: endpointPort, weight }) => ({ ip, port: endpointPort, weight })));
      return id;
    }, (key, value) => after.sockets.frontends.set(frontendId(key), [key, value]));
    packetPortEntries(port, (group, which) => after.sockets.ids.get(groupName(group, which)) ?? 0,
      (key, value) => after.packets.frontends.set(frontendId(key), [key, value]), (id, range) => after.packets.sourceRanges.set(id, range));
  }

  swap(plan.sockets.frontends, before.sockets.frontends, after.sockets.frontends);
  swap(plan.sockets.groups, before.sockets.groups, after.sockets.groups);
  swap(plan.sockets.ids, before.sockets.ids, after.sockets.ids);
  swap(plan.packets.frontends, before.packets.frontends, after.packets.frontends);
  swap(plan.packets.sourceRanges, before.packets.sourceRanges, after.packets.sourceRanges);
  return { before, after };
}

function heldId(plan: NodePlan) {
  return (port: ServicePortRules, which: 'cluster' | 'local') => plan.sockets.ids.get(groupName(port, which)) ?? 0;
}

/** The entry the plan holds under a frontend's key, copied to `into`. */
function copy<V>(from: Map<string, [FrontendKey, V]>, into: Map<string, [FrontendKey, V]>, key: FrontendKey): void {
  const entry = from.get(frontendId(key));
  if (entry) into.set(frontendId(key), entry);
}

/** Takes `gone`'s keys out of `map` and puts `added` in. */
function swap<K, V>(map: Map<K, V>, gone: Map<K, V>, added: Map<K, V>): void {
  for (const key of gone.keys()) map.delete(key);
  for (const [key, value] of added) map.set(key, value);
}
