// Synthetic clusters for benchmarks: N Services × M endpoints over K nodes, as API objects.

export interface SyntheticOptions {
  services: number;
  endpoints: number;
  nodes?: number;
}

const ip = (base: number, index: number) => `10.${base + (index >> 16)}.${(index >> 8) & 255}.${index & 255}`;

/** The address of endpoint `e` of Service `s` in a synthetic cluster with `endpoints` per Service. */
export const endpointIP = (s: number, e: number, endpoints: number) => ip(64, s * (endpoints + 8) + e);

/** The cluster IP of Service `s`. */
export const clusterIP = (s: number) => `10.96.${(s + 1) >> 8}.${(s + 1) & 255}`;

/** Node names node-0 .. node-(K-1); node-0 is the one the benchmark computes for. */
export function syntheticCluster({ services, endpoints, nodes = 3 }: SyntheticOptions, extraEndpoint?: (service: number) => number): object[] {
  const objects: object[] = [];
  for (let n = 0; n < nodes; n++) {
    objects.push({
      apiVersion: 'v1', kind: 'Node', metadata: { name: `node-${n}` },
      spec: { podCIDR: `10.244.${n}.0/24`, podCIDRs: [`10.244.${n}.0/24`] },
      status: { addresses: [{ type: 'InternalIP', address: `192.168.56.${10 + n}` }] },
    });
  }
  for (let s = 0; s < services; s++) {
    // A realistic mix: mostly ClusterIP, some NodePort, a few LoadBalancer with Local policy.
    const type = s % 10 === 9 ? 'LoadBalancer' : s % 5 === 4 ? 'NodePort' : 'ClusterIP';
    const nodePort = type === 'ClusterIP' ? {} : { nodePort: 30000 + (s % 2768) };
    objects.push({
      apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${s}`, namespace: `ns-${s % 20}` },
      spec: {
        type, clusterIP: clusterIP(s),
        ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, ...nodePort }],
        ...(type === 'LoadBalancer' ? { externalTrafficPolicy: 'Local' } : {}),
      },
      ...(type === 'LoadBalancer' ? { status: { loadBalancer: { ingress: [{ ip: `198.51.${100 + (s >> 8)}.${s & 255}` }] } } } : {}),
    });
    const count = endpoints + (extraEndpoint?.(s) ?? 0);
    objects.push({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `svc-${s}-abcde`, namespace: `ns-${s % 20}`, labels: { 'kubernetes.io/service-name': `svc-${s}` } },
      addressType: 'IPv4',
      endpoints: Array.from({ length: count }, (_, e) => ({
        addresses: [endpointIP(s, e, endpoints)], conditions: { ready: true }, nodeName: `node-${e % nodes}`,
      })),
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    });
  }
  return objects;
}
