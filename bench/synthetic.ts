// Synthetic clusters for benchmarks: N Services × M endpoints over K nodes, as API objects.

export interface SyntheticOptions {
  services: number;
  endpoints: number;
  nodes?: number;
}

const NODES = 3;
// The API server allocates node ports from 30000-32767: at most this many Services can have one.
const NODE_PORTS = 2768;

const ip = (base: number, index: number) => `10.${base + (index >> 16)}.${(index >> 8) & 255}.${index & 255}`;

/** The address of endpoint `e` of Service `s` in a synthetic cluster with `endpoints` per Service. */
export const endpointIP = (s: number, e: number, endpoints: number) => ip(64, s * (endpoints + 8) + e);

/** The cluster IP of Service `s`. */
export const clusterIP = (s: number) => `10.96.${(s + 1) >> 8}.${(s + 1) & 255}`;

/** Node names node-0 .. node-(K-1); node-0 is the one the benchmark computes for. */
export function syntheticCluster({ services, endpoints, nodes = NODES }: SyntheticOptions, extraEndpoint?: (service: number) => number): object[] {
  const objects: object[] = [];
  for (let n = 0; n < nodes; n++) {
    objects.push({
      apiVersion: 'v1', kind: 'Node', metadata: { name: `node-${n}` },
      spec: { podCIDR: `10.244.${n}.0/24`, podCIDRs: [`10.244.${n}.0/24`] },
      status: { addresses: [{ type: 'InternalIP', address: `192.168.56.${10 + n}` }] },
    });
  }
  for (let s = 0; s < services; s++) objects.push(...syntheticService(s, endpoints, extraEndpoint?.(s) ?? 0, nodes));
  return objects;
}

/**
 * Service `s` and its EndpointSlice, with `extra` endpoints beyond `endpoints`. A realistic mix: 70 %
 * ClusterIP, 20 % NodePort while node ports last, 10 % LoadBalancer with externalTrafficPolicy Local
 * and no node port (allocateLoadBalancerNodePorts: false, so that their number is not capped).
 */
export function syntheticService(s: number, endpoints: number, extra = 0, nodes = NODES): [object, object] {
  const nodePortIndex = Math.floor(s / 5);
  const type = s % 10 === 9 ? 'LoadBalancer' : s % 5 === 4 && nodePortIndex < NODE_PORTS ? 'NodePort' : 'ClusterIP';
  const loadBalancer = type === 'LoadBalancer';
  const service = {
    apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${s}`, namespace: `ns-${s % 20}` },
    spec: {
      type, clusterIP: clusterIP(s),
      ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, ...(type === 'NodePort' ? { nodePort: 30000 + nodePortIndex } : {}) }],
      ...(loadBalancer ? { externalTrafficPolicy: 'Local', allocateLoadBalancerNodePorts: false } : {}),
    },
    // 198.18.0.0/15, the benchmarking range: room for 131,072 load-balancer IPs.
    ...(loadBalancer ? { status: { loadBalancer: { ingress: [{ ip: `198.${18 + (s >> 16)}.${(s >> 8) & 255}.${s & 255}` }] } } } : {}),
  };
  const slice = {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: `svc-${s}-abcde`, namespace: `ns-${s % 20}`, labels: { 'kubernetes.io/service-name': `svc-${s}` } },
    addressType: 'IPv4',
    endpoints: Array.from({ length: endpoints + extra }, (_, e) => ({
      addresses: [endpointIP(s, e, endpoints)], conditions: { ready: true }, nodeName: `node-${e % nodes}`,
    })),
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
  return [service, slice];
}
