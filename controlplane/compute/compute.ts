// compute: the pure function from cluster state to one node's rules, where Service semantics live.
import { hash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { cidrContains, familyOf } from '../model/ip.js';
import type { Balancing, ClusterState, Endpoint, EndpointSlice, IPFamily, Node, Service, ServicePort } from '../model/types.js';
import type {
  EndpointGroup, EndpointTarget, FamilyRules, L4Protocol, NodePortAddresses, NodeRules, ServicePortRules,
} from '../../rules/node-rules.js';
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

/** The key of an endpoint in a weights map: protocol, IP and port, e.g. tcp/10.0.0.1:80 or tcp/[fd00::1]:80. */
export function endpointKey(protocol: L4Protocol, ip: string, port: number): string {
  return `${protocol}/${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
}

const NO_WEIGHTS: EndpointWeights = new Map();

/** Computes the rules of node `nodeName`; the same input always gives the same output. */
export function computeNodeRules(
  state: ClusterState, nodeName: string, config: ComputeConfig, weights: EndpointWeights = NO_WEIGHTS,
): NodeRules {
  const node = state.nodes.find((candidate) => candidate.name === nodeName);
  if (!node) throw new ComputeError(`node ${JSON.stringify(nodeName)} is not among the Node objects of the input`);
  return {
    node: nodeName,
    masqueradeMark: `0x${(2 ** config.masqueradeBit).toString(16)}`,
    families: FAMILIES.map((family) => computeFamily(state, node, config, weights, family)),
    healthChecks: healthChecks(state, node),
  };
}

/** kube-proxy's health-check node ports: one per Local-policy Service that has one allocated. */
function healthChecks(state: ClusterState, node: Node): NodeRules['healthChecks'] {
  return state.services
    .filter((service) => service.externalTrafficPolicy === 'Local' && service.healthCheckNodePort > 0)
    .map((service) => {
      // A dual-stack pod has an address per family: count per family and take the larger count. Ready
      // ones only, as kube-proxy counts: a node whose local endpoints all terminate answers 503, so that
      // load balancers stop sending it new connections while they drain.
      const perFamily = FAMILIES.map((family) => {
        const local = new Set<string>();
        for (const port of service.ports) {
          for (const endpoint of serviceEndpoints(state, service, port, family)) {
            if (endpoint.nodeName === node.name && endpoint.conditions.ready) local.add(endpoint.ip);
          }
        }
        return local.size;
      });
      return { namespace: service.namespace, name: service.name, port: service.healthCheckNodePort, localEndpoints: Math.max(...perFamily) };
    })
    .sort((a, b) => a.port - b.port);
}

function computeFamily(
  state: ClusterState, node: Node, config: ComputeConfig, weights: EndpointWeights, family: IPFamily,
): FamilyRules {
  const ofFamily = (address: string) => familyOf(address) === family;
  // The API and the config allow at most one pod or cluster CIDR per family.
  const localCIDR = (config.detectLocalMode === 'ClusterCIDR' ? config.clusterCIDRs : node.podCIDRs).find(ofFamily);
  const context: FamilyContext = { family, node, localCIDR, masqueradeAll: config.masqueradeAll, weights, balancing: config.balancing ?? 'least-busy' };
  const services = state.services.filter((service) => service.clusterIPs.some(ofFamily));
  const servicePorts = services
    .flatMap((service) => portsOf(state, service, context))
    .sort((a, b) => compareText(a.id, b.id));
  return {
    family,
    localCIDR,
    nodePortAddresses: nodePortAddresses(config, node, family),
    serviceCIDRs: unique(state.serviceCIDRs.flatMap((serviceCIDR) => serviceCIDR.cidrs).filter(ofFamily)),
    clusterIPs: sortedIPs(unique(services.flatMap((service) => service.clusterIPs.filter(ofFamily)))),
    servicePorts,
  };
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

// What a Service's ports became, per family: its rules depend only on the Service, its slices and the
// context, so a sync after one change recomputes that one Service. Model objects are reused across
// syncs for API objects that did not change (see buildClusterState), which makes identity a valid key.
interface PortsMemo {
  slices: readonly EndpointSlice[];
  context: FamilyContext;
  ports: ServicePortRules[];
}
const portsMemo = new WeakMap<Service, Map<IPFamily, PortsMemo>>();

function portsOf(state: ClusterState, service: Service, context: FamilyContext): ServicePortRules[] {
  const slices = slicesOf(state).get(sliceKey(context.family, service.namespace, service.name)) ?? [];
  const byFamily = portsMemo.get(service) ?? new Map<IPFamily, PortsMemo>();
  const memo = byFamily.get(context.family);
  if (memo && sameContext(memo.context, context) && sameItems(memo.slices, slices)) return memo.ports;
  const ports = service.ports.map((port) => computeServicePort(state, service, port, context));
  byFamily.set(context.family, { slices, context, ports });
  portsMemo.set(service, byFamily);
  return ports;
}

function sameContext(a: FamilyContext, b: FamilyContext): boolean {
  return a.node === b.node && a.localCIDR === b.localCIDR && a.masqueradeAll === b.masqueradeAll
    && a.weights === b.weights && a.balancing === b.balancing;
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((item, index) => item === b[index]);
}

function computeServicePort(state: ClusterState, service: Service, port: ServicePort, context: FamilyContext): ServicePortRules {
  const { family, node } = context;
  const ofFamily = (address: string) => familyOf(address) === family;
  const protocol = port.protocol.toLowerCase() as L4Protocol;
  const id = `${service.namespace}/${service.name}:${port.name || port.port}/${protocol}`;
  const clusterIP = service.clusterIPs.find(ofFamily)!;
  const loadBalancerIPs = service.loadBalancerIPs.filter(ofFamily);
  const externalIPs = unique([...service.externalIPs.filter(ofFamily), ...loadBalancerIPs]);

  const endpoints = serviceEndpoints(state, service, port, family);
  // Topology hints narrow the endpoints of Cluster policies only; Local policies keep this node's.
  const topology = topologyMode(endpoints, node);
  const usable = usableEndpoints(endpoints.filter((endpoint) => availableForTopology(endpoint, topology, node)));
  const usableLocal = usableEndpoints(endpoints.filter((endpoint) => endpoint.nodeName === node.name));
  const hasExternal = port.nodePort > 0 || externalIPs.length > 0;
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
    endpoints: endpointTargets(id, protocol, members, weights, node.name),
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
    nodePort: port.nodePort,
    externalIPs,
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
export function serviceEndpoints(state: ClusterState, service: Service, port: ServicePort, family: IPFamily): PortEndpoint[] {
  const byAddress = new Map<string, PortEndpoint>();
  for (const slice of slicesOf(state).get(sliceKey(family, service.namespace, service.name)) ?? []) {
    const slicePort = slice.ports.find((candidate) => candidate.name === port.name && candidate.protocol === port.protocol);
    if (!slicePort) continue;
    for (const endpoint of slice.endpoints) {
      const key = `${endpoint.ip}/${slicePort.port}`;
      // The same address in two slices happens while the controller moves it; the first slice wins.
      if (!byAddress.has(key)) byAddress.set(key, { ...endpoint, port: slicePort.port, source: slice.source });
    }
  }
  return [...byAddress.values()];
}

const sliceIndexes = new WeakMap<ClusterState, Map<string, EndpointSlice[]>>();
const sliceKey = (family: IPFamily, namespace: string, service: string) => `${family} ${namespace}/${service}`;

/** The slices of each Service and family, in name order; built once per state, so lookups do not scan every slice. */
function slicesOf(state: ClusterState): Map<string, EndpointSlice[]> {
  let index = sliceIndexes.get(state);
  if (!index) {
    index = new Map();
    for (const slice of state.endpointSlices) {
      const key = sliceKey(slice.family, slice.namespace, slice.serviceName);
      const slices = index.get(key);
      if (slices) slices.push(slice);
      else index.set(key, [slice]);
    }
    for (const slices of index.values()) if (slices.length > 1) slices.sort((a, b) => compareText(a.name, b.name));
    sliceIndexes.set(state, index);
  }
  return index;
}

/** Ready endpoints; when none is ready, those still serving while terminating (kube-proxy's fallback). */
function usableEndpoints<T extends Endpoint>(endpoints: T[]): T[] {
  const ready = endpoints.filter((endpoint) => endpoint.conditions.ready);
  if (ready.length > 0) return ready;
  return endpoints.filter((endpoint) => endpoint.conditions.serving && endpoint.conditions.terminating);
}

function endpointTargets(id: string, protocol: L4Protocol, endpoints: PortEndpoint[], weights: EndpointWeights, nodeName: string): EndpointTarget[] {
  // Sorting compares each address many times: parse each once.
  const sorted = endpoints.map((endpoint) => ({ endpoint, key: ipSortKey(endpoint.ip) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.endpoint.port - b.endpoint.port))
    .map(({ endpoint }) => endpoint);
  const shares = integerWeights(sorted.map((endpoint) => weights.get(endpointKey(protocol, endpoint.ip, endpoint.port)) ?? 1));
  return sorted.map((endpoint, index) => ({
    hash: stableHash(`${id}/${endpointKey(protocol, endpoint.ip, endpoint.port)}`),
    ip: endpoint.ip,
    port: endpoint.port,
    weight: shares[index]!,
    onNode: endpoint.nodeName === nodeName || endpoint.nodeName === '',
  }));
}

/** 16 hex digits of sha256: stable across runs and short enough for iptables' 28-character chain names. */
export function stableHash(text: string): string {
  return hash('sha256', text, 'hex').slice(0, 16).toUpperCase();
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Numeric address order, so that 10.0.0.9 sorts before 10.0.0.10; each address is parsed once. */
function sortedIPs(ips: string[]): string[] {
  return ips.map((ip) => ({ ip, key: ipSortKey(ip) })).sort((a, b) => compareText(a.key, b.key)).map(({ ip }) => ip);
}

/** A string that sorts like the address: family first, then the bytes as fixed-width hex. */
function ipSortKey(ip: string): string {
  if (ip.includes(':')) return `6${ipaddr.parse(ip).toByteArray().map((byte) => byte.toString(16).padStart(2, '0')).join('')}`;
  // A canonical dotted quad: its 32 bits as 8 hex digits, without parsing it into an object.
  const [a, b, c, d] = ip.split('.').map(Number) as [number, number, number, number];
  return `4${(a * 2 ** 24 + b * 2 ** 16 + c * 2 ** 8 + d).toString(16).padStart(8, '0')}`;
}
