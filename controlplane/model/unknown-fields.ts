// Field names the Kubernetes API does not have, as `kubectl apply --validate` warns about them. The
// schema is the one @kubernetes/client-node is generated from: each model class's attributeTypeMap
// lists the JSON field names of that API type and their types, so nothing here is written by hand but
// where to look. The types ferry walks are copied out of client-node into api-schema.ts (`npm run
// schema`; a test fails when they differ): importing its ~700 generated model modules took 150 ms of
// every command's start.
import { API_SCHEMA } from './api-schema.js';
import { isRecord } from './fields.js';

/** The schema type of each object ferry reads, by `apiVersion/kind`. */
export const OBJECT_SCHEMAS: Readonly<Record<string, string>> = {
  'v1/Service': 'V1Service',
  'discovery.k8s.io/v1/EndpointSlice': 'V1EndpointSlice',
  'v1/Node': 'V1Node',
  'v1/Pod': 'V1Pod',
  'networking.k8s.io/v1/ServiceCIDR': 'V1ServiceCIDR',
  'networking.k8s.io/v1beta1/ServiceCIDR': 'V1beta1ServiceCIDR',
};

/**
 * Types whose own field names are checked but only the listed fields are looked into (every other
 * type is checked all the way down). What is left out ferry does not read, and it is free-form
 * (managedFields, conditions) or large and growing with every Kubernetes release (a Pod's volumes and
 * probes, a Node's images and conditions): real `kubectl get -o yaml` output of a cluster newer than
 * client-node must not warn there. Maps (labels, annotations, selector, capacity) are never looked into.
 */
export const LOOK_INTO: Readonly<Record<string, readonly string[]>> = {
  V1ObjectMeta: [],
  V1ServiceStatus: ['loadBalancer'],
  V1ServiceCIDRStatus: [],
  V1beta1ServiceCIDRStatus: [],
  V1NodeSpec: [],
  V1NodeStatus: ['addresses'],
  V1PodSpec: ['containers', 'initContainers'],
  V1Container: ['ports'],
  V1PodStatus: ['podIPs'],
};

/** A field the schema does not have: its path in the object and the known field it most looks like. */
export interface UnknownField {
  path: string;
  suggestion: string | undefined;
}

/** An API type's fields: JSON name → type name (`V1ServicePort`, `Array<string>`, `{ [key: string]: string; }`). */
export type TypeFields = Readonly<Record<string, string>>;

const schemas = new Map<string, Map<string, string> | undefined>();

/** The fields of an API type (JSON name → type), or undefined for primitives, maps and unknown names. */
export function schemaFields(type: string): Map<string, string> | undefined {
  if (!schemas.has(type)) {
    const fields = Object.hasOwn(API_SCHEMA, type) ? API_SCHEMA[type] : undefined;
    schemas.set(type, fields ? new Map(Object.entries(fields)) : undefined);
  }
  return schemas.get(type);
}

/**
 * The fields of every type `unknownFields` can reach from OBJECT_SCHEMAS, LOOK_INTO followed, by type
 * name in name order: what api-schema.ts holds. `fieldsOf` reads one type from client-node's models.
 */
export function reachableSchema(fieldsOf: (type: string) => TypeFields | undefined): Record<string, TypeFields> {
  const found: Record<string, TypeFields> = {};
  const visit = (type: string): void => {
    const item = itemType(type);
    if (item !== undefined) return visit(item);
    if (Object.hasOwn(found, type)) return;
    const fields = fieldsOf(type);
    if (!fields) return;
    found[type] = fields;
    const lookInto = LOOK_INTO[type];
    for (const [field, child] of Object.entries(fields)) if (!lookInto || lookInto.includes(field)) visit(child);
  };
  for (const type of Object.values(OBJECT_SCHEMAS)) visit(type);
  return Object.fromEntries(Object.entries(found).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Every field of `object` that its schema type does not have, in document order. */
export function unknownFields(object: unknown, type: string): UnknownField[] {
  const found: UnknownField[] = [];
  walk(object, type, [], found);
  return found;
}

const itemTypes = new Map<string, string | undefined>();
/** `Array<T>` → T, once per type name. */
function itemType(type: string): string | undefined {
  if (!itemTypes.has(type)) itemTypes.set(type, /^Array<(.+)>$/.exec(type)?.[1]);
  return itemTypes.get(type);
}

// The path is kept as raw segments (keys and indexes) and spelled only for an unknown field: every
// object of a large cluster is walked, and almost none has one.
function walk(value: unknown, type: string, path: Array<string | number>, found: UnknownField[]): void {
  const item = itemType(type);
  if (item !== undefined) {
    if (!Array.isArray(value)) return;
    for (let index = 0; index < value.length; index += 1) {
      path.push(index);
      walk(value[index], item, path, found);
      path.pop();
    }
    return;
  }
  const fields = schemaFields(type);
  if (!fields || !isRecord(value)) return;
  const lookInto = LOOK_INTO[type];
  for (const key in value) {
    const childType = fields.get(key);
    path.push(key);
    if (childType === undefined) found.push({ path: spelled(path), suggestion: closestName(key, [...fields.keys()]) });
    else if (!lookInto || lookInto.includes(key)) walk(value[key], childType, path, found);
    path.pop();
  }
}

/** `spec.ports[1].name` from ['spec', 'ports', 1, 'name']. */
const spelled = (path: Array<string | number>) => path.map((segment, index) => (typeof segment === 'number' ? `[${segment}]` : index ? `.${segment}` : segment)).join('');

/** The one candidate a typo of `name` could be (a letter or two off, or another case), if there is one. */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  const limit = Math.min(2, Math.max(1, Math.floor(name.length / 4)));
  let best: string | undefined;
  let bestDistance = limit + 1;
  let tied = false;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance, tied] = [candidate, distance, false];
    else if (distance === bestDistance) tied = true;
  }
  return tied ? undefined : best;
}

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours.
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i += 1) {
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let distance = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) distance = Math.min(distance, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = distance;
    }
  }
  return rows[a.length]![b.length]!;
}
