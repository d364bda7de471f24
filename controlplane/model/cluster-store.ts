// The agent's change tracker: the raw objects a source reported, each read once when it arrives, an
// index kept up to date object by object, and the Services whose rules those objects may have changed
// since the last take() (kube-proxy's ServiceChangeTracker and EndpointsChangeTracker in one). compute
// stays pure: what take() returns is its input.
import { isDeepStrictEqual } from 'node:util';
import { expandLists, readObject, type ReadObject } from './cluster-state.js';
import { ClusterIndex, frontendsOf, serviceKey } from './cluster-index.js';
import { isRecord } from './fields.js';
import { selectorEndpointSlices } from './selector-endpoints.js';
import type { EndpointSlice, IPFamily, ModelError, Pod } from './types.js';

/** What changed since the last take(): the Services whose rules may differ, or all of them. */
export interface StoreChanges {
  index: ClusterIndex;
  services: ReadonlySet<string> | 'all';
  /** Objects left out and what was tolerated, for the objects read since the last take(). */
  errors: ModelError[];
  warnings: ModelError[];
  /** When the EndpointSlice changes since the last take() were triggered, for the network-programming latency. */
  triggers: TriggerTime[];
}

/** An EndpointSlice change's trigger time (ms since the epoch) and the family of its slice. */
export interface TriggerTime {
  family: IPFamily;
  time: number;
}

/** Changes seen and not yet taken, as kube-proxy's *_changes_pending gauges count them. */
export interface PendingChanges {
  /** Services added, changed or deleted. */
  services: number;
  /** EndpointSlice additions, changes and deletions. */
  endpointSlices: number;
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
  private readonly pendingServices = new Set<string>();
  private pendingSlices = 0;
  /** Trigger times of the slice changes not yet taken, per Service (kube-proxy's lastChangeTriggerTimes). */
  private triggers = new Map<string, TriggerTime[]>();
  /** Trigger times before this are ignored: the initial list's slices changed before the agent ran. */
  private readonly startedAt: number;

  /**
   * `node`: the node whose rules are computed; a change to its Node object changes every rule.
   * `wallClock`: ms since the epoch, what trigger times are compared with.
   */
  constructor(private readonly node: string, wallClock: () => number = Date.now) {
    this.startedAt = wallClock();
  }

  apply(change: ObjectChange): void {
    if (change.type === 'put') this.put(change.object);
    else this.forget(objectKey(change.object));
  }

  /**
   * A source's whole view (a manifests directory read again): what is not in it goes, and an object
   * held already (the same object: the source keeps unchanged ones) is not read again.
   */
  replaceAll(objects: unknown[], heardAt?: number): void {
    const seen = new Set<string>();
    let position = 0;
    for (const object of expandLists(objects)) {
      const key = objectKey(object) ?? `#${position}`;
      position += 1;
      seen.add(key);
      if (this.held.get(key)?.raw !== object) this.put(object, key, heardAt);
    }
    for (const key of [...this.held.keys()]) if (!seen.has(key)) this.forget(key);
  }

  /** What changed since the last take(). */
  pending(): PendingChanges {
    return { services: this.pendingServices.size, endpointSlices: this.pendingSlices };
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
    const changes: StoreChanges = {
      index: this.index, services: this.all ? 'all' : this.changed, errors: this.errors, warnings: this.warnings, triggers: [...this.triggers.values()].flat(),
    };
    this.changed = new Set();
    this.all = false;
    this.errors = [];
    this.warnings = [];
    this.triggers = new Map();
    this.pendingServices.clear();
    this.pendingSlices = 0;
    return changes;
  }

  /**
   * `heardAt` (ms since the epoch): when a source of whole views read the object; it stands in for a
   * slice's trigger time there (see noteChange).
   */
  private put(object: unknown, key = objectKey(object) ?? '#', heardAt?: number): void {
    const before = this.held.get(key)?.read;
    this.remove(key);
    const read = readObject(object);
    this.held.set(key, { raw: object, read });
    this.warnings.push(...read.warnings);
    if (read.kind === 'error') this.errors.push(read.error);
    this.account(read, true);
    this.noteChange(before, read, heardAt);
  }

  /** An object deleted (not replaced): what it held goes. */
  private forget(key: string | undefined): void {
    const before = key === undefined ? undefined : this.held.get(key)?.read;
    this.remove(key);
    this.noteChange(before, undefined);
  }

  /**
   * Counts a Service or EndpointSlice that changed for the pending gauges, and keeps a changed slice's
   * trigger time, as kube-proxy's change trackers do: only a change that changes what the model holds,
   * only a trigger time after the agent started, and a slice's deletion drops its Service's trigger
   * times (its annotation dates from its last update, not from the deletion). A source of whole views
   * (manifests) has no EndpointSlice controller to stamp the change: the file is the change, so the
   * time ferry read it is the trigger time of a slice without a later one of its own.
   */
  private noteChange(before: ReadObject | undefined, after: ReadObject | undefined, heardAt?: number): void {
    const service = (read: ReadObject | undefined) => (read?.kind === 'Service' ? read.value : undefined);
    const slice = (read: ReadObject | undefined) => (read?.kind === 'EndpointSlice' ? read.value : undefined);
    const [serviceBefore, serviceAfter] = [service(before), service(after)];
    if ((serviceBefore || serviceAfter) && !isDeepStrictEqual(serviceBefore, serviceAfter)) {
      this.pendingServices.add(serviceKey((serviceAfter ?? serviceBefore)!.namespace, (serviceAfter ?? serviceBefore)!.name));
    }
    const [sliceBefore, sliceAfter] = [slice(before), slice(after)];
    if (!(sliceBefore || sliceAfter) || isDeepStrictEqual(sliceBefore, sliceAfter)) return;
    this.pendingSlices += 1;
    if (!sliceAfter) {
      this.triggers.delete(serviceKey(sliceBefore!.namespace, sliceBefore!.serviceName));
      return;
    }
    const stamped = after?.kind === 'EndpointSlice' ? after.triggerTime : undefined;
    const time = stamped !== undefined && stamped > this.startedAt ? stamped : heardAt;
    if (time === undefined) return;
    const key = serviceKey(sliceAfter.namespace, sliceAfter.serviceName);
    this.triggers.set(key, [...(this.triggers.get(key) ?? []), { family: sliceAfter.family, time }]);
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
