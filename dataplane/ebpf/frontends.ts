// The eBPF maps read back as Service frontends (`ferry services`). The socket maps say what pods and
// node processes reach at a cluster IP; the packet maps what traffic from outside reaches at external
// addresses and node ports. Maps hold no names: the Service column stays empty, as in Cilium's list.
import { anyAddress, cidrOf, sortFrontends, type FrontendEndpoint, type FrontendKind, type ServiceFrontend } from '../../rules/frontends.js';
import { compareText } from '../../rules/port-changes.js';
import type { WeightedEndpoint } from './groups.js';
import type { NodePlan } from './node-plan.js';
import { frontendId } from './plan.js';

/** `clusterIPs`: the companion table's cluster-ips sets (the maps do not mark cluster IPs). */
export function ebpfFrontends(plan: NodePlan, clusterIPs: ReadonlySet<string>): ServiceFrontend[] {
  const endpointsOf = (group: number): FrontendEndpoint[] => shares(plan.sockets.groups.get(group) ?? []);
  const nodeAddresses = new Set(plan.packets.nodeAddresses);
  const frontends = new Map<string, ServiceFrontend>();
  for (const [key, value] of plan.sockets.frontends.values()) {
    if (!clusterIPs.has(key.ip)) continue;
    const serving = value.verdict === 'serve';
    frontends.set(`${frontendId(key)}|ClusterIP`, {
      address: key.ip, port: key.port, protocol: key.protocol, kind: 'ClusterIP', service: null,
      verdict: value.verdict === 'serve' ? 'forward' : value.verdict, affinitySeconds: serving ? value.affinitySeconds : 0,
      sourceRanges: [], endpoints: serving ? endpointsOf(value.group) : [],
    });
  }
  for (const [key, value] of plan.packets.frontends.values()) {
    if (clusterIPs.has(key.ip)) continue;
    // Node ports: at the any-address, or at each node address nodePortAddresses allows (one row for them all).
    const nodePort = key.ip === '0.0.0.0' || key.ip === '::' || nodeAddresses.has(key.ip);
    const kind: FrontendKind = nodePort ? 'NodePort' : 'External';
    const address = nodePort ? anyAddress(key.ip.includes(':')) : key.ip;
    const serving = value.verdict === 'serve';
    const id = frontendId(key);
    frontends.set(`${address}|${key.port}|${key.protocol}|${kind}`, {
      address, port: key.port, protocol: key.protocol, kind, service: null,
      verdict: value.verdict === 'serve' ? 'forward' : value.verdict, affinitySeconds: serving ? value.affinitySeconds : 0,
      sourceRanges: value.ranged ? [...plan.packets.sourceRanges.entries()].filter(([rangeId]) => rangeId.startsWith(`${id}|`)).map(([, range]) => cidrOf(range.cidr)).sort(compareText) : [],
      endpoints: serving ? endpointsOf(value.group) : [],
    });
  }
  return sortFrontends([...frontends.values()]);
}

function shares(endpoints: WeightedEndpoint[]): FrontendEndpoint[] {
  const total = endpoints.reduce((sum, endpoint) => sum + endpoint.weight, 0);
  return endpoints.map((endpoint) => ({ ip: endpoint.ip, port: endpoint.port, probability: endpoint.weight / total }));
}
