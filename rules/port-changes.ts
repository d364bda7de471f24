// Which Service ports differ between two NodeRules of a node: what compute tells render and the
// backends, so that a sync after one change handles that change's ports and not every port.
import type { IPFamily } from '../controlplane/model/types.js';
import type { FamilyRules, ServicePortRules } from './node-rules.js';

/** `family id` of every port removed, added or computed again; 'all' when anything may differ. */
export type PortChanges = 'all' | ReadonlySet<string>;

export const portKey = (family: IPFamily, id: string) => `${family} ${id}`;

/** Strings in UTF-16 code-unit order, as `<` compares them: servicePorts is sorted by id in this order. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The first index whose item is not below `target` in `compare`'s order (items sorted by it). */
export function lowerBound<T, K>(items: readonly T[], target: K, compare: (item: T, target: K) => number): number {
  let [low, high] = [0, items.length];
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compare(items[middle]!, target) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** The port of this id in a family's rules (servicePorts is sorted by id), found by binary search. */
export function findPort(family: FamilyRules, id: string): ServicePortRules | undefined {
  const port = family.servicePorts[lowerBound(family.servicePorts, id, (item, target) => compareText(item.id, target))];
  return port?.id === id ? port : undefined;
}

/** Where the ports of a Service (ids beginning `namespace/name:`) are in a sorted servicePorts: [start, end). */
export function servicePortRange(ports: readonly ServicePortRules[], service: string): [number, number] {
  const prefix = `${service}:`;
  const start = lowerBound(ports, prefix, (item, target) => compareText(item.id, target));
  let end = start;
  while (end < ports.length && ports[end]!.id.startsWith(prefix)) end += 1;
  return [start, end];
}

/** The Service a port id belongs to: its `namespace/name`. */
export const serviceOf = (id: string) => id.slice(0, id.indexOf(':'));

/** The family and id of a port key. */
export function splitPortKey(key: string): { family: IPFamily; id: string } {
  const space = key.indexOf(' ');
  return { family: key.slice(0, space) as IPFamily, id: key.slice(space + 1) };
}
