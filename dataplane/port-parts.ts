// A rendering kept in parts, one per Service port in the order of the family's servicePorts (sorted by
// id): after a change, the parts of the changed ports are made again and spliced in where their ports
// now are, the rest taken over as they were (nftables and iptables both keep their renderings so).
import type { FamilyRules, ServicePortRules } from '../rules/node-rules.js';
import { compareText, lowerBound, splitPortKey } from '../rules/port-changes.js';

const byId = (item: ServicePortRules, id: string) => compareText(item.id, id);

/**
 * The parts of `after`'s ports, from `parts` (those of `before`'s ports) with the ports among `changed`
 * (port keys of any family) made again by `make`; `gone` and `made` are the parts that went and came.
 */
export function spliceParts<P>(before: FamilyRules, parts: readonly P[], after: FamilyRules, changed: ReadonlySet<string>, make: (port: ServicePortRules) => P): { parts: P[]; gone: P[]; made: P[] } {
  const next = parts.slice();
  const ids = [...changed].map(splitPortKey).filter((key) => key.family === after.family).map((key) => key.id).sort(compareText);
  // Removals first, from the end, so that the positions found in the old order stay right.
  const at = ids.map((id) => lowerBound(before.servicePorts, id, byId)).filter((index, k) => before.servicePorts[index]?.id === ids[k]);
  const gone = at.reverse().map((index) => next.splice(index, 1)[0]!);
  const made: P[] = [];
  for (const id of ids) {
    const index = lowerBound(after.servicePorts, id, byId);
    const port = after.servicePorts[index];
    if (port?.id !== id) continue;
    const part = make(port);
    next.splice(index, 0, part);
    made.push(part);
  }
  return { parts: next, gone, made };
}

/** The part of the port `id`, where `family`'s ports have it. */
export function partOf<P>(family: FamilyRules, parts: readonly P[], id: string): P | undefined {
  const index = lowerBound(family.servicePorts, id, byId);
  return family.servicePorts[index]?.id === id ? parts[index] : undefined;
}
