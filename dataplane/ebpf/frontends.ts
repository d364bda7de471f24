// The eBPF maps read back as Service frontends (`ferry services`, `ferry trace --live`). The socket maps
// say what pods and node processes reach at a cluster IP; the packet maps what traffic from outside
// reaches at external addresses and node ports, who is masqueraded, and where a Local policy sends the
// local sources. Maps hold no names: the Service column stays empty, as in Cilium's list.
import { anyAddress, cidrOf, sortFrontends, type FrontendEndpoint, type FrontendFamily, type FrontendKind, type FrontendState, type ServiceFrontend } from '../../rules/frontends.js';
import { compareText } from '../../rules/port-changes.js';
import type { WeightedEndpoint } from './groups.js';
import type { Masquerade } from './layout.js';
import type { NodePlan } from './node-plan.js';
import { frontendId } from './plan.js';

/** What the companion table holds per family: the cluster IPs and service CIDRs (the maps mark neither). */
export interface CompanionFacts {
  clusterIPs: ReadonlySet<string>;
  serviceCIDRs: readonly string[];
}

const MASQUERADE: Record<Masquerade, ServiceFrontend['masquerade']> = { always: 'all', 'off-cluster': 'off-cluster', never: 'none' };

export function ebpfFrontends(plan: NodePlan, companion: CompanionFacts): FrontendState {
  const { clusterIPs } = companion;
  const endpointsOf = (group: number): FrontendEndpoint[] => shares(plan.sockets.groups.get(group) ?? []);
  const frontends = new Map<string, ServiceFrontend>();
  for (const [key, value] of plan.sockets.frontends.values()) {
    if (!clusterIPs.has(key.ip)) continue;
    const serving = value.verdict === 'serve';
    // Who is masqueraded is the packet path's (connections through the node); the socket path never is.
    const packet = plan.packets.frontends.get(frontendId(key))?.[1];
    frontends.set(`${frontendId(key)}|ClusterIP`, {
      address: key.ip, port: key.port, protocol: key.protocol, kind: 'ClusterIP', service: null,
      verdict: value.verdict === 'serve' ? 'forward' : value.verdict, affinitySeconds: serving ? value.affinitySeconds : 0,
      sourceRanges: [], endpoints: serving ? endpointsOf(value.group) : [],
      masquerade: serving && packet ? MASQUERADE[packet.masquerade] : 'none', inside: null,
    });
  }
  for (const [key, value] of plan.packets.frontends.values()) {
    if (clusterIPs.has(key.ip)) continue;
    // Node ports sit at the any-address; the node-addresses map says where they answer.
    const nodePort = key.ip === anyAddress(key.ip.includes(':'));
    const kind: FrontendKind = nodePort ? 'NodePort' : 'External';
    const address = key.ip;
    const serving = value.verdict === 'serve';
    const id = frontendId(key);
    // A Local policy's local sources (pods in the local CIDR, the node's processes) reach every endpoint, also where outside traffic is dropped.
    const local = value.localSourceGroup !== 0;
    frontends.set(`${address}|${key.port}|${key.protocol}|${kind}`, {
      address, port: key.port, protocol: key.protocol, kind, service: null,
      verdict: value.verdict === 'serve' ? 'forward' : value.verdict, affinitySeconds: serving ? value.affinitySeconds : 0,
      sourceRanges: value.ranged ? [...plan.packets.sourceRanges.entries()].filter(([rangeId]) => rangeId.startsWith(`${id}|`)).map(([, range]) => cidrOf(range.cidr)).sort(compareText) : [],
      endpoints: serving ? endpointsOf(value.group) : [],
      masquerade: serving ? MASQUERADE[value.masquerade] : 'none', inside: local ? endpointsOf(value.localSourceGroup) : null,
    });
  }
  const rows = sortFrontends([...frontends.values()]);
  const families = (['IPv4', 'IPv6'] as const).flatMap((family): FrontendFamily[] => {
    const ofFamily = (address: string) => address.includes(':') === (family === 'IPv6');
    const familyClusterIPs = [...clusterIPs].filter(ofFamily);
    if (familyClusterIPs.length === 0 && !rows.some((row) => ofFamily(row.address))) return [];
    const localCIDR = plan.packets.localSources.find(ofFamily);
    return [{
      family, ...(localCIDR ? { localCIDR } : {}), clusterIPs: familyClusterIPs.sort(compareText), serviceCIDRs: companion.serviceCIDRs.filter(ofFamily),
      nodePortAddresses: { kind: 'addresses', addresses: plan.packets.nodeAddresses.filter(ofFamily) },
    }];
  });
  return { families, frontends: rows };
}

function shares(endpoints: WeightedEndpoint[]): FrontendEndpoint[] {
  const total = endpoints.reduce((sum, endpoint) => sum + endpoint.weight, 0);
  return endpoints.map((endpoint) => ({ ip: endpoint.ip, port: endpoint.port, probability: endpoint.weight / total }));
}
