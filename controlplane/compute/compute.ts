// compute: the pure function from cluster state to one node's rules, where Service semantics live.
import { addressSortKey as ipSortKey, cidrContains, familyOf, ipv4Value } from '../model/ip.js';
import { addressFrontend, ClusterIndex, frontendsOf, nodePortFrontend, serviceKey } from '../model/cluster-index.js';
import type { Balancing, ClusterState, Endpoint, EndpointSlice, IPFamily, Node, Service, ServicePort } from '../model/types.js';
import type {
  EndpointGroup, EndpointTarget, FamilyRules, HealthCheck, L4Protocol, NodePortAddresses, NodeRules, ServicePortRules,
} from '../../rules/node-rules.js';
import { endpointKey, stableHash } from '../../rules/names.js';
import { compareText, lowerBound, portKey, servicePortRange, type PortChanges } from '../../rules/port-changes.js';
import { availableForTopology, topologyMode } from './topology.js';
import { integerWeights } from './weights.js';

/** The parts of the proxy configuration that shape rules. */
export interface ComputeConfig {
  clusterCIDRs: string[];
  detectLocalMode: 'ClusterCIDR' | 'NodeCIDR';
  nodePortAddresses: { kind: 'primary' } | { kind: 'all' } | { kind: 'cidrs'; cidrs: string[] };
  masqueradeBit: number;
  masqueradeAll: boolean;
  /** Whether endpoint weights apply to Services without a ferry.dev/balancing annotation. */
  balancing?: Balancing;
}

/** Per-endpoint weights keyed by endpointKey(); missing endpoints weigh 1. */
export type EndpointWeights = ReadonlyMap<string, number>;

/** The input of compute was unusable as a whole (for example the node is unknown). */
export class ComputeError extends Error {}

const FAMILIES: IPFamily[] = ['IPv4', 'IPv6'];

const NO_WEIGHTS: EndpointWeights = new Map();

/** Computes the rules of node `nodeName`; the same input always gives the same output. */
export function computeNodeRules(
  state: ClusterState, nodeName: string, config: ComputeConfig, weights: EndpointWeights = NO_WEIGHTS,
): NodeRules {
  return computeFromIndex(ClusterIndex.of(state), nodeName, config, weights);
}

/** The same from an index of the cluster (what the agent's ClusterStore holds). */
export function computeFromIndex(index: ClusterIndex, nodeName: string, config: ComputeConfig, weights: EndpointWeights = NO_WEIGHTS): NodeRules {
  const node = nodeOf(index, nodeName);
  return {
    node: nodeName,
    masqueradeMark: `0x${(2 ** config.masqueradeBit).toString(16)}`,
    families: FAMILIES.map((family) => computeFamily(index, node, config, weights, family)),
    healthChecks: [...index.services.values()].flatMap((service) => healthCheck(index, service, node)).sort(compareHealthChecks),
  };
}

/** The next rules and which ports they changed. */
export interface RulesUpdate {
  rules: NodeRules;
  changed: PortChanges;
}

/**
 * The rules after a change, from the rules before it: only the Services named in `services` are
 * computed again (the rest of `previous` is taken as it is), so that a sync costs what changed. The
 * result equals computeFromIndex(index, ...) as long as `services` names every Service whose objects
 * or endpoint weights changed since `previous` was computed, and the node and config did not change
 * ('all' when they may have).
 */
export function updateNodeRules(
  previous: NodeRules | undefined, index: ClusterIndex, nodeName: string, config: ComputeConfig, weights: EndpointWeights,
  services: ReadonlySet<string> | 'all',
): RulesUpdate {
  if (!previous || services === 'all') return { rules: computeFromIndex(index, nodeName, config, weights), changed: 'all' };
  const node = nodeOf(index, nodeName);
  const changed = new Set<string>();
  const keys = withSharers(previous, index, services);
  const families = previous.families.map((family) => updateFamily(family, index, node, config, weights, keys, changed));
  const healthChecks = [
    ...previous.healthChecks.filter((check) => !keys.has(serviceKey(check.namespace, check.name))),
    ...[...keys].flatMap((key) => {
      const service = index.services.get(key);
      return service ? healthCheck(index, service, node) : [];
    }),
  ].sort(compareHealthChecks);
  return { rules: { ...previous, families, healthChecks }, changed };
}

/**
 * The changed Services and every Service that shares a frontend with one of them, before or after the
 * change: who keeps a shared frontend may have changed with it.
 */
function withSharers(previous: NodeRules, index: ClusterIndex, services: ReadonlySet<string>): ReadonlySet<string> {
  const keys = new Set(services);
  for (const key of services) {
    const frontends = new Set(frontendsOfKey(index, key));
    for (const family of previous.families) {
      const [start, end] = servicePortRange(family.servicePorts, key);
      for (const port of family.servicePorts.slice(start, end)) {
        for (const ip of [port.clusterIP, ...port.externalIPs]) frontends.add(addressFrontend(ip, port.protocol, port.port));
        if (port.nodePort > 0) frontends.add(nodePortFrontend(port.protocol, port.nodePort));
      }
    }
    for (const frontend of frontends) for (const claimant of index.claimantsOf(frontend)) keys.add(claimant);
  }
  return keys;
}

function frontendsOfKey(index: ClusterIndex, key: string): string[] {
  const service = index.services.get(key);
  return service ? frontendsOf(service).map(({ frontend }) => frontend) : [];
}

function nodeOf(index: ClusterIndex, nodeName: string): Node {
  const node = index.nodes.get(nodeName);
  if (!node) throw new ComputeError(`node ${JSON.stringify(nodeName)} is not among the Node objects of the input`);
  return node;
}

/**
 * kube-proxy's health-check node port of a Local-policy Service that has one allocated. A dual-stack
 * pod has an address per family: count per family and take the larger count. Ready ones only, as
 * kube-proxy counts: a node whose local endpoints all terminate answers 503, so that load balancers
 * stop sending it new connections while they drain.
 */
function healthCheck(index: ClusterIndex, service: Service, node: Node): NodeRules['healthChecks'] {
  if (service.externalTrafficPolicy !== 'Local' || service.healthCheckNodePort <= 0) return [];
  const perFamily = FAMILIES.map((family) => {
    const local = new Set<string>();
    for (const port of service.ports) {
      for (const endpoint of serviceEndpoints(index, service, port, family)) {
        if (endpoint.nodeName === node.name && endpoint.conditions.ready) local.add(endpoint.ip);
      }
    }
    return local.size;
  });
  return [{ namespace: service.namespace, name: service.name, port: service.healthCheckNodePort, localEndpoints: Math.max(...perFamily) }];
}

function compareHealthChecks(a: HealthCheck, b: HealthCheck): number {
  return a.port - b.port || compareText(serviceKey(a.namespace, a.name), serviceKey(b.namespace, b.name));
}

function familyContext(node: Node, config: ComputeConfig, weights: EndpointWeights, family: IPFamily): FamilyContext {
  // The API and the config allow at most one pod or cluster CIDR per family.
  const localCIDR = (config.detectLocalMode === 'ClusterCIDR' ? config.clusterCIDRs : node.podCIDRs).find((address) => familyOf(address) === family);
  return { family, node, localCIDR, masqueradeAll: config.masqueradeAll, weights, balancing: config.balancing ?? 'least-busy' };
}

function computeFamily(
  index: ClusterIndex, node: Node, config: ComputeConfig, weights: EndpointWeights, family: IPFamily,
): FamilyRules {
  const context = familyContext(node, config, weights, family);
  const services = [...index.servicesOf(family)];
  const servicePorts = services
    .flatMap((service) => service.ports.flatMap((port) => computeServicePort(index, service, port, context) ?? []))
    .sort((a, b) => compareText(a.id, b.id));
  return {
    ...familyWide(index, config, context),
    servicePorts,
    clusterIPs: sortedIPs(unique(services.flatMap((service) => service.clusterIPs.filter((ip) => familyOf(ip) === family)))),
  };
}

/** What a family's rules hold beside its ports and cluster IPs: read again at every sync, it is small. */
function familyWide(index: ClusterIndex, config: ComputeConfig, context: FamilyContext) {
  const { family, node, localCIDR } = context;
  return {
    family,
    localCIDR,
    nodePortAddresses: nodePortAddresses(config, node, family),
    serviceCIDRs: unique([...index.serviceCIDRs.values()].flatMap((serviceCIDR) => serviceCIDR.cidrs).filter((cidr) => familyOf(cidr) === family)),
  };
}

/**
 * One family after a change: the changed Services' ports spliced out of the sorted servicePorts and
 * their new ones in at the same place (a Service's port ids share the prefix `namespace/name:`, so
 * they sit together), each key of a port touched added to `changed`.
 */
function updateFamily(
  previous: FamilyRules, index: ClusterIndex, node: Node, config: ComputeConfig, weights: EndpointWeights,
  services: ReadonlySet<string>, changed: Set<string>,
): FamilyRules {
  const { family } = previous;
  const context = familyContext(node, config, weights, family);
  const servicePorts = previous.servicePorts.slice();
  const clusterIPs = previous.clusterIPs.slice();
  for (const key of services) {
    const [start, end] = servicePortRange(servicePorts, key);
    const removed = servicePorts.splice(start, end - start);
    const service = index.services.get(key);
    const clusterIP = service?.clusterIPs.find((ip) => familyOf(ip) === family);
    const ports = service && clusterIP ? service.ports.flatMap((port) => computeServicePort(index, service, port, context) ?? []).sort((a, b) => compareText(a.id, b.id)) : [];
    servicePorts.splice(start, 0, ...ports);
    for (const port of [...removed, ...ports]) changed.add(portKey(family, port.id));
    // An address stays while any Service holds it (hand-written manifests may give two the same).
    for (const ip of new Set([...removed.map((port) => port.clusterIP), ...(clusterIP ? [clusterIP] : [])])) {
      const at = lowerBound(clusterIPs, ipSortKey(ip), (item, target) => compareText(ipSortKey(item), target));
      const listed = clusterIPs[at] === ip;
      if (listed && !index.holdsClusterIP(ip)) clusterIPs.splice(at, 1);
      if (!listed && index.holdsClusterIP(ip)) clusterIPs.splice(at, 0, ip);
    }
  }
  return { ...familyWide(index, config, context), servicePorts, clusterIPs };
}

interface FamilyContext {
  family: IPFamily;
  node: Node;
  localCIDR: string | undefined;
  masqueradeAll: boolean;
  weights: EndpointWeights;
  balancing: Balancing;
}

function nodePortAddresses(config: ComputeConfig, node: Node, family: IPFamily): NodePortAddresses {
  const ofFamily = (address: string) => familyOf(address) === family;
  switch (config.nodePortAddresses.kind) {
    case 'all':
      return { kind: 'all' };
    case 'cidrs':
      return { kind: 'cidrs', cidrs: config.nodePortAddresses.cidrs.filter(ofFamily) };
    case 'primary': {
      // kube-proxy's "primary": the node's own IP of the family, as the Node object reports it.
      const primary = node.internalIPs.find(ofFamily) ?? node.externalIPs.find(ofFamily);
      return { kind: 'addresses', addresses: primary ? [primary] : [] };
    }
  }
}

/** A port's rules; undefined when another Service has its cluster IP and port (which the API never allows). */
function computeServicePort(index: ClusterIndex, service: Service, port: ServicePort, context: FamilyContext): ServicePortRules | undefined {
  const { family, node } = context;
  const ofFamily = (address: string) => familyOf(address) === family;
  const protocol = port.protocol.toLowerCase() as L4Protocol;
  const id = `${service.namespace}/${service.name}:${port.name || port.port}/${protocol}`;
  const clusterIP = service.clusterIPs.find(ofFamily)!;
  // Frontends another Service keeps (ClusterIndex.ownerOf) are left to it; the model warns of them.
  const owned = (frontend: string) => index.ownerOf(frontend) === serviceKey(service.namespace, service.name);
  if (!owned(addressFrontend(clusterIP, port.protocol, port.port))) return undefined;
  const ownedIP = (ip: string) => ip !== clusterIP && owned(addressFrontend(ip, port.protocol, port.port));
  const loadBalancerIPs = service.loadBalancerIPs.filter(ofFamily).filter(ownedIP);
  const externalIPs = unique([...service.externalIPs.filter(ofFamily).filter(ownedIP), ...loadBalancerIPs]);
  const nodePort = port.nodePort > 0 && owned(nodePortFrontend(port.protocol, port.nodePort)) ? port.nodePort : 0;

  const endpoints = serviceEndpoints(index, service, port, family);
  // Topology hints narrow the endpoints of Cluster policies only; Local policies keep this node's.
  const topology = topologyMode(endpoints, node);
  const usable = usableEndpoints(endpoints.filter((endpoint) => availableForTopology(endpoint, topology, node)));
  const usableLocal = usableEndpoints(endpoints.filter((endpoint) => endpoint.nodeName === node.name));
  const hasExternal = nodePort > 0 || externalIPs.length > 0;
  const internalLocal = service.internalTrafficPolicy === 'Local';
  const externalLocal = service.externalTrafficPolicy === 'Local';
  const hasEndpoints = usable.length > 0 || usableLocal.length > 0;

  const internal = !hasEndpoints ? 'reject'
    : internalLocal ? (usableLocal.length > 0 ? 'local' : 'drop')
    : 'cluster';
  const clusterIPMasquerade = context.masqueradeAll ? 'all' : context.localCIDR ? 'off-cluster' : 'none';
  // A uniform Service ignores measured weights, whatever the agent measured.
  const weights = (service.balancing ?? context.balancing) === 'uniform' ? NO_WEIGHTS : context.weights;
  const group = (members: PortEndpoint[], target: 'cluster' | 'local'): EndpointGroup => ({
    endpoints: endpointTargets(protocol, members, weights, node.name),
    clusterIPMasquerade: internal === target ? clusterIPMasquerade : 'none',
  });
  // The cluster group also serves pod and node traffic to external addresses under a Local policy.
  const needsCluster = usable.length > 0 && (!internalLocal || hasExternal);
  const needsLocal = usableLocal.length > 0 && (internalLocal || (hasExternal && externalLocal));

  return {
    id,
    hash: stableHash(id),
    protocol,
    clusterIP,
    port: port.port,
    nodePort,
    externalIPs,
    loadBalancerIPs,
    // Fails closed: ranges given but none of this family (or none readable) let nobody from outside in.
    firewall: loadBalancerIPs.length > 0 && service.loadBalancerSourceRanges !== undefined
      ? { loadBalancerIPs, sourceRanges: allowedSources(service.loadBalancerSourceRanges.filter(ofFamily), loadBalancerIPs, node, family) }
      : undefined,
    cluster: needsCluster ? group(usable, 'cluster') : undefined,
    local: needsLocal ? group(usableLocal, 'local') : undefined,
    internal,
    external: hasExternal
      ? {
          policy: externalLocal ? 'Local' : 'Cluster',
          hasLocalEndpoints: externalLocal && usableLocal.length > 0,
          verdict: !hasEndpoints ? 'reject' : externalLocal && usableLocal.length === 0 ? 'drop' : undefined,
        }
      : undefined,
    affinitySeconds: service.affinitySeconds,
    servingEndpoints: [...new Set(endpoints.filter((endpoint) => endpoint.conditions.serving).map((endpoint) => endpoint.ip))].sort(),
  };
}

/**
 * The source ranges, and, when they let this node in, the load-balancer IPs themselves (kube-proxy's
 * rule): a load-balancer IP that is also a local address of the node (a VIP-style load balancer adds a
 * route) loops the node's own request to it back with that IP as its source.
 */
function allowedSources(ranges: string[], loadBalancerIPs: string[], node: Node, family: IPFamily): string[] {
  const ofFamily = (address: string) => familyOf(address) === family;
  const nodeIP = node.internalIPs.find(ofFamily) ?? node.externalIPs.find(ofFamily);
  if (nodeIP === undefined || !ranges.some((cidr) => cidrContains(cidr, nodeIP))) return ranges;
  return [...ranges, ...loadBalancerIPs.map((ip) => `${ip}/${family === 'IPv4' ? 32 : 128}`)];
}

/** An endpoint of one Service port: the address, its port for this Service port, and where it came from. */
export interface PortEndpoint extends Endpoint {
  port: number;
  source: EndpointSlice['source'];
}

/** The endpoints of one Service port: slices of the Service and family, port matched by name and protocol. */
export function serviceEndpoints(index: ClusterIndex, service: Service, port: ServicePort, family: IPFamily): PortEndpoint[] {
  const byAddress = new Map<string, PortEndpoint>();
  for (const slice of index.slicesOf(family, serviceKey(service.namespace, service.name))) {
    const slicePort = slice.ports.find((candidate) => candidate.name === port.name && candidate.protocol === port.protocol);
    if (!slicePort) continue;
    for (const endpoint of slice.endpoints) {
      const key = `${endpoint.ip}/${slicePort.port}`;
      // The same address in two slices happens while the controller moves it; the first slice wins.
      if (!byAddress.has(key)) byAddress.set(key, { ip: endpoint.ip, nodeName: endpoint.nodeName, conditions: endpoint.conditions, hints: endpoint.hints, port: slicePort.port, source: slice.source });
    }
  }
  return [...byAddress.values()];
}

/** Ready endpoints; when none is ready, those still serving while terminating (kube-proxy's fallback). */
function usableEndpoints<T extends Endpoint>(endpoints: T[]): T[] {
  const ready = endpoints.filter((endpoint) => endpoint.conditions.ready);
  if (ready.length > 0) return ready;
  return endpoints.filter((endpoint) => endpoint.conditions.serving && endpoint.conditions.terminating);
}

function endpointTargets(protocol: L4Protocol, endpoints: PortEndpoint[], weights: EndpointWeights, nodeName: string): EndpointTarget[] {
  // Sorting compares each address many times: read each once (a group is of one family, so the keys are all numbers or all strings).
  const sorted = endpoints.map((endpoint) => ({ endpoint, key: ipv4Value(endpoint.ip) ?? ipSortKey(endpoint.ip) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.endpoint.port - b.endpoint.port));
  // Without measured weights (a first sync, a uniform Service) every endpoint weighs 1: no key to spell.
  const shares = integerWeights(sorted.map(({ endpoint }) => (weights.size ? weights.get(endpointKey(protocol, endpoint.ip, endpoint.port)) ?? 1 : 1)));
  return sorted.map(({ endpoint }, index) => ({
    ip: endpoint.ip,
    port: endpoint.port,
    weight: shares[index]!,
    onNode: endpoint.nodeName === nodeName || endpoint.nodeName === '',
  }));
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}


/** Numeric address order, so that 10.0.0.9 sorts before 10.0.0.10; each address is parsed once. */
function sortedIPs(ips: string[]): string[] {
  return ips.map((ip) => ({ ip, key: ipSortKey(ip) })).sort((a, b) => compareText(a.key, b.key)).map(({ ip }) => ip);
}
