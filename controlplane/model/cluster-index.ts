// The model keyed for lookups: Services by namespace/name, each Service's slices per family, Nodes by
// name. compute reads only this; the agent's ClusterStore keeps one up to date object by object, and
// ClusterIndex.of builds one from a whole ClusterState (the CLI, tests).
import { familyOf } from './ip.js';
import type { ClusterState, EndpointSlice, IPFamily, Node, Service, ServiceCIDR } from './types.js';

/** A Service's key: `namespace/name`, as the port ids of its rules begin (`namespace/name:port/protocol`). */
export const serviceKey = (namespace: string, name: string) => `${namespace}/${name}`;

const sliceGroup = (family: IPFamily, service: string) => `${family} ${service}`;

export class ClusterIndex {
  readonly services = new Map<string, Service>();
  readonly nodes = new Map<string, Node>();
  readonly serviceCIDRs = new Map<string, ServiceCIDR>();
  /** Each Service's slices of one family, in name order; an array is replaced, never changed, when a slice comes or goes. */
  private readonly slices = new Map<string, readonly EndpointSlice[]>();
  /** How many Services hold each cluster IP (the API allows one; hand-written manifests may repeat it). */
  private readonly clusterIPUsers = new Map<string, number>();

  static of(state: ClusterState): ClusterIndex {
    const index = new ClusterIndex();
    for (const service of state.services) index.putService(service);
    for (const slice of state.endpointSlices) index.putSlice(slice);
    for (const node of state.nodes) index.nodes.set(node.name, node);
    for (const cidr of state.serviceCIDRs) index.serviceCIDRs.set(cidr.name, cidr);
    return index;
  }

  /** The slices of a Service for one family, in name order. */
  slicesOf(family: IPFamily, service: string): readonly EndpointSlice[] {
    return this.slices.get(sliceGroup(family, service)) ?? [];
  }

  /** Whether any Service holds this cluster IP. */
  holdsClusterIP(ip: string): boolean {
    return this.clusterIPUsers.has(ip);
  }

  putService(service: Service): void {
    const key = serviceKey(service.namespace, service.name);
    this.removeService(key);
    this.services.set(key, service);
    for (const ip of service.clusterIPs) this.clusterIPUsers.set(ip, (this.clusterIPUsers.get(ip) ?? 0) + 1);
  }

  removeService(key: string): void {
    const service = this.services.get(key);
    if (!service) return;
    this.services.delete(key);
    for (const ip of service.clusterIPs) {
      const users = this.clusterIPUsers.get(ip)! - 1;
      if (users === 0) this.clusterIPUsers.delete(ip);
      else this.clusterIPUsers.set(ip, users);
    }
  }

  /** A slice replaces the one of the same namespace and name. */
  putSlice(slice: EndpointSlice): void {
    this.removeSlice(slice);
    const group = sliceGroup(slice.family, serviceKey(slice.namespace, slice.serviceName));
    const slices = [...(this.slices.get(group) ?? []), slice].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.slices.set(group, slices);
  }

  /** Removes the slice of this namespace, name, Service and family (the slice as it was added). */
  removeSlice(slice: EndpointSlice): void {
    const group = sliceGroup(slice.family, serviceKey(slice.namespace, slice.serviceName));
    const slices = this.slices.get(group);
    if (!slices?.some((held) => held.name === slice.name)) return;
    const rest = slices.filter((held) => held.name !== slice.name);
    if (rest.length > 0) this.slices.set(group, rest);
    else this.slices.delete(group);
  }

  /** Every Service with a cluster IP of the family. */
  *servicesOf(family: IPFamily): Generator<Service> {
    for (const service of this.services.values()) if (service.clusterIPs.some((ip) => familyOf(ip) === family)) yield service;
  }
}
