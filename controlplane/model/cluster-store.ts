// The agent's change tracker: the raw objects a source reported, each read once when it arrives, an
// index kept up to date object by object, and the Services whose rules those objects may have changed
// since the last take() (kube-proxy's ServiceChangeTracker and EndpointsChangeTracker in one). compute
// stays pure: what take() returns is its input.
import { expandLists, readObject, type ReadObject } from './cluster-state.js';
import { ClusterIndex, frontendsOf, serviceKey } from './cluster-index.js';
import { isRecord } from './fields.js';
import { selectorEndpointSlices } from './selector-endpoints.js';
import type { EndpointSlice, ModelError, Pod } from './types.js';

/** What changed since the last take(): the Services whose rules may differ, or all of them. */
export interface StoreChanges {
  index: ClusterIndex;
  services: ReadonlySet<string> | 'all';
  /** Objects left out and what was tolerated, for the objects read since the last take(). */
  errors: ModelError[];
  warnings: ModelError[];
}

/** A change a source reports: an object added or changed, or deleted (as it was last seen). */
export interface ObjectChange {
  type: 'put' | 'delete';
  object: unknown;
}

export class ClusterStore {
  private readonly index = new ClusterIndex();
  private readonly held = new Map<string, { raw: unknown; read: ReadObject }>();
  private readonly pods = new Map<string, Pod>();
  /** Slices derived from Pods (manifests without slices): rebuilt whole when a Pod or Service changes. */
  private derived: EndpointSlice[] = [];
  private changed = new Set<string>();
  private all = true;
  private podsChanged = false;
  private errors: ModelError[] = [];
  private warnings: ModelError[] = [];

  /** `node`: the node whose rules are computed; a change to its Node object changes every rule. */
  constructor(private readonly node: string) {}

  apply(change: ObjectChange): void {
    if (change.type === 'put') this.put(change.object);
    else this.remove(objectKey(change.object));
  }

  /**
   * A source's whole view (a manifests directory read again): what is not in it goes, and an object
   * held already (the same object: the source keeps unchanged ones) is not read again.
   */
  replaceAll(objects: unknown[]): void {
    const seen = new Set<string>();
    let position = 0;
    for (const object of expandLists(objects)) {
      const key = objectKey(object) ?? `#${position}`;
      position += 1;
      seen.add(key);
      if (this.held.get(key)?.raw !== object) this.put(object, key);
    }
    for (const key of [...this.held.keys()]) if (!seen.has(key)) this.remove(key);
  }

  /** Services whose rules change for a reason outside the objects (their endpoints' measured weights). */
  touch(services: Iterable<string>): void {
    for (const key of services) this.changed.add(key);
  }

  take(): StoreChanges {
    if (this.pods.size > 0 || this.podsChanged) this.deriveSlices();
    // Frontends the changed Services share with others: the one that does not keep it is told.
    const sharers = this.all ? this.index.services.keys() : new Set([...this.changed].flatMap((key) => {
      const service = this.index.services.get(key);
      return service ? frontendsOf(service).flatMap(({ frontend }) => [...this.index.claimantsOf(frontend)]) : [];
    }));
    this.warnings.push(...this.index.conflicts(sharers));
    const changes: StoreChanges = { index: this.index, services: this.all ? 'all' : this.changed, errors: this.errors, warnings: this.warnings };
    this.changed = new Set();
    this.all = false;
    this.errors = [];
    this.warnings = [];
    return changes;
  }

  private put(object: unknown, key = objectKey(object) ?? '#'): void {
    this.remove(key);
    const read = readObject(object);
    this.held.set(key, { raw: object, read });
    this.warnings.push(...read.warnings);
    if (read.kind === 'error') this.errors.push(read.error);
    this.account(read, true);
  }

  /** Takes out what the object under `key` put in. */
  private remove(key: string | undefined): void {
    const held = key === undefined ? undefined : this.held.get(key);
    if (!held) return;
    this.held.delete(key!);
    this.account(held.read, false);
  }

  /** Puts what a read object holds into the index (`present`) or takes it out, and notes what that changes. */
  private account(read: ReadObject, present: boolean): void {
    switch (read.kind) {
      case 'Service': {
        if (!read.value) return;
        const service = serviceKey(read.value.namespace, read.value.name);
        if (present) this.index.putService(read.value);
        else this.index.removeService(service);
        this.changed.add(service);
        return;
      }
      case 'EndpointSlice':
        if (!read.value) return;
        if (present) this.index.putSlice(read.value);
        else this.index.removeSlice(read.value);
        this.changed.add(serviceKey(read.value.namespace, read.value.serviceName));
        return;
      case 'Node':
        if (present) this.index.nodes.set(read.value.name, read.value);
        else this.index.nodes.delete(read.value.name);
        if (read.value.name === this.node) this.all = true;
        return;
      case 'ServiceCIDR':
        // Family-wide, not per Service: compute reads them again at every sync.
        if (present) this.index.serviceCIDRs.set(read.value.name, read.value);
        else this.index.serviceCIDRs.delete(read.value.name);
        return;
      case 'Pod': {
        const pod = serviceKey(read.value.namespace, read.value.name);
        if (present) this.pods.set(pod, read.value);
        else this.pods.delete(pod);
        this.podsChanged = true;
        return;
      }
    }
  }

  /**
   * Endpoints from Pods for Services without slices of their own, derived again whole when anything
   * changed: only manifests hold Pods (the API source lists none), so this costs nothing on a cluster.
   */
  private deriveSlices(): void {
    if (!this.podsChanged && this.changed.size === 0 && !this.all) return;
    for (const slice of this.derived) this.index.removeSlice(slice);
    const slices = [...this.held.values()].flatMap(({ read }) => (read.kind === 'EndpointSlice' && read.value ? [read.value] : []));
    const derived = selectorEndpointSlices({
      services: [...this.index.services.values()], endpointSlices: slices, nodes: [], serviceCIDRs: [], pods: [...this.pods.values()],
    });
    this.derived = derived.slices;
    for (const slice of this.derived) this.index.putSlice(slice);
    this.warnings.push(...derived.warnings);
    this.podsChanged = false;
    this.all = true;
  }
}

/** `kind namespace/name` of a raw object, or undefined when it has no name to key it by. */
function objectKey(object: unknown): string | undefined {
  if (!isRecord(object) || !isRecord(object.metadata) || typeof object.metadata.name !== 'string' || !object.metadata.name) return undefined;
  const namespace = typeof object.metadata.namespace === 'string' ? object.metadata.namespace : '';
  return `${String(object.kind)} ${namespace}/${object.metadata.name}`;
}
