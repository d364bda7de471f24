// The fixed address plan every test uses. Addresses only ever live inside network namespaces that
// the tests create; nothing here is configured in the root namespace.

export const plan = {
  serviceCIDR: { ipv4: '10.96.0.0/16', ipv6: 'fd00:96::/112' },
  clusterCIDR: { ipv4: '10.244.0.0/16', ipv6: 'fd00:244::/56' },
  /** Per-node pod CIDRs and node (fabric) addresses. */
  nodes: {
    'node-a': { ipv4: '192.168.56.11', ipv6: 'fd00:56::11', podCIDR: { ipv4: '10.244.1.0/24', ipv6: 'fd00:244:0:1::/64' } },
    'node-b': { ipv4: '192.168.56.12', ipv6: 'fd00:56::12', podCIDR: { ipv4: '10.244.2.0/24', ipv6: 'fd00:244:0:2::/64' } },
    'node-c': { ipv4: '192.168.56.13', ipv6: 'fd00:56::13', podCIDR: { ipv4: '10.244.3.0/24', ipv6: 'fd00:244:0:3::/64' } },
  },
  fabric: { ipv4: '192.168.56.0/24', ipv6: 'fd00:56::/64' },
  /** A client outside the cluster, on the fabric. */
  externalClient: { ipv4: '192.168.56.100', ipv6: 'fd00:56::100' },
  /** externalIPs come from TEST-NET-3, load-balancer ingress IPs from TEST-NET-2. */
  externalIPs: { ipv4: '203.0.113.0/24', ipv6: 'fd00:203::/64' },
  loadBalancerIPs: { ipv4: '198.51.100.0/24', ipv6: 'fd00:198::/64' },
} as const;

/** Addresses of the i-th node (0-based) of a generated cluster; node-a..node-c match plan.nodes. */
export function nodePlan(index: number) {
  const n = index + 1;
  return {
    name: `node-${String.fromCharCode(97 + index)}`,
    ipv4: `192.168.56.${10 + n}`,
    ipv6: `fd00:56::${10 + n}`,
    podCIDR: { ipv4: `10.244.${n}.0/24`, ipv6: `fd00:244:0:${n}::/64` },
    gateway: { ipv4: `10.244.${n}.1`, ipv6: `fd00:244:0:${n}::1` },
    /** The k-th pod (0-based) on the node. */
    pod: (k: number) => ({ ipv4: `10.244.${n}.${10 + k}`, ipv6: `fd00:244:0:${n}::${(10 + k).toString(16)}` }),
  };
}

/** Addresses of the i-th external client (0-based) on the fabric. */
export function externalPlan(index: number) {
  return { ipv4: `192.168.56.${100 + index}`, ipv6: `fd00:56::${(0x100 + index).toString(16)}` };
}
