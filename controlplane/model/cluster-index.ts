// The model keyed for lookups: Services by namespace/name, each Service's slices per family, Nodes by
// name. compute reads only this; the agent's ClusterStore keeps one up to date object by object, and
// ClusterIndex.of builds one from a whole ClusterState (the CLI, tests).
import { familyOf } from './ip.js';
import { printableError } from './printable.js';
import type { ClusterState, EndpointSlice, IPFamily, ModelError, Node, Service, ServiceCIDR } from './types.js';

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
  /** The Services that claim each frontend (an address and port, or a node port), and those that claim it with a cluster IP: see frontendsOf. */
  private readonly claims = new Map<string, Set<string>>();
  private readonly clusterClaims = new Map<string, Set<string>>();
  /** How many frontends more than one Service claims: with none, no Service can have a conflict. */
  private contested = 0;

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

  /**
   * The Service that keeps a frontend several Services claim: one that has it as its cluster IP, else
   * the first by namespace/name. The API gives each cluster IP and node port one Service, but not each
   * external or load-balancer IP and port, and one rule set cannot send a frontend two ways (nftables
   * refuses the whole transaction). Of two Services on one cluster IP and port, which the API never
   * allows, the second by namespace/name gets no rules for that port.
   */
  ownerOf(frontend: string): string | undefined {
    let owner: string | undefined;
    for (const claimant of this.clusterClaims.get(frontend) ?? this.claims.get(frontend) ?? []) if (owner === undefined || claimant < owner) owner = claimant;
    return owner;
  }

  /** A warning for each frontend one of these Services claims and another keeps (ownerOf). */
  conflicts(services: Iterable<string>): ModelError[] {
    const warnings: ModelError[] = [];
    if (this.contested === 0) return warnings;
    for (const key of services) {
      const service = this.services.get(key);
      for (const { frontend, field } of service ? frontendsOf(service) : []) {
        const owner = this.ownerOf(frontend);
        if (owner === key || owner === undefined) continue;
        const [where, protocol, port] = frontend.split('|');
        const what = where === 'node' ? `node port ${port}/${protocol!.toUpperCase()}` : `${where!.includes(':') ? `[${where}]` : where}:${port}/${protocol!.toUpperCase()}`;
        warnings.push(printableError({ kind: 'Service', object: key, field, message: `${field}: ${what} is Service ${owner}'s too, which keeps it (ignored here)` }));
      }
    }
    return warnings;
  }

  /** The Services that claim a frontend. */
  claimantsOf(frontend: string): ReadonlySet<string> {
    return this.claims.get(frontend) ?? new Set();
  }

  putService(service: Service): void {
    const key = serviceKey(service.namespace, service.name);
    this.removeService(key);
    this.services.set(key, service);
    for (const ip of service.clusterIPs) this.clusterIPUsers.set(ip, (this.clusterIPUsers.get(ip) ?? 0) + 1);
    for (const { frontend, cluster } of frontendsOf(service)) {
      const claimants = (this.claims.get(frontend) ?? new Set()).add(key);
      this.claims.set(frontend, claimants);
      if (claimants.size === 2) this.contested += 1;
      if (cluster) this.clusterClaims.set(frontend, (this.clusterClaims.get(frontend) ?? new Set()).add(key));
    }
  }

  removeService(key: string): void {
    const service = this.services.get(key);
    if (!service) return;
    this.services.delete(key);
    for (const { frontend, cluster } of frontendsOf(service)) {
      for (const claims of cluster ? [this.claims, this.clusterClaims] : [this.claims]) {
        const claimants = claims.get(frontend)!;
        claimants.delete(key);
        if (claims === this.claims && claimants.size === 1) this.contested -= 1;
        if (claimants.size === 0) claims.delete(frontend);
      }
    }
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

/** A frontend's key: an address, protocol and port, or (`node`) a node port and protocol. */
export const addressFrontend = (ip: string, protocol: string, port: number) => `${ip}|${protocol.toLowerCase()}|${port}`;
export const nodePortFrontend = (protocol: string, nodePort: number) => `node|${protocol.toLowerCase()}|${nodePort}`;

/** Every frontend a Service claims, with the field that claims it (for the warning when another keeps it) and whether it is its cluster IP. */
export function frontendsOf(service: Service): { frontend: string; field: string; cluster: boolean }[] {
  const claimed = new Map<string, { frontend: string; field: string; cluster: boolean }>();
  const claim = (frontend: string, field: string, cluster: boolean) => {
    // A Service claims a frontend once, whichever fields name it; as its cluster IP if that is one of them.
    if (!claimed.get(frontend)?.cluster) claimed.set(frontend, { frontend, field, cluster });
  };
  service.ports.forEach((port, index) => {
    for (const ip of [...service.externalIPs, ...service.loadBalancerIPs]) {
      claim(addressFrontend(ip, port.protocol, port.port), service.externalIPs.includes(ip) ? 'spec.externalIPs' : 'status.loadBalancer.ingress', false);
    }
    for (const ip of service.clusterIPs) claim(addressFrontend(ip, port.protocol, port.port), 'spec.clusterIPs', true);
    if (port.nodePort > 0) claim(nodePortFrontend(port.protocol, port.nodePort), `spec.ports[${index}].nodePort`, false);
  });
  return [...claimed.values()];
}
