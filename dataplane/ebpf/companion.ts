// The eBPF backend's companion nftables table (templates/ebpf-companion.hbs): conntrack and NAT on for
// the entries the packet program inserts; kube-proxy's reject for Services without endpoints and for
// ports a cluster IP does not serve, which the programs let pass untranslated, and its drop of
// unallocated service addresses. Pure.
import type { NodeRules } from '../../rules/node-rules.js';
import { templates } from '../templates.js';

/** The companion table's nft -f script for these rules. */
export function companionScript(rules: NodeRules): string {
  const services = { IPv4: new Set<string>(), IPv6: new Set<string>() };
  // Cluster IPs whose internal policy is Local with no endpoint here: the socket programs let them through untranslated.
  const dropped = { IPv4: new Set<string>(), IPv6: new Set<string>() };
  const nodePorts = new Set<string>();
  for (const family of rules.families) {
    for (const port of family.servicePorts) {
      const element = (ip: string) => `${ip} . ${port.protocol} . ${port.port}`;
      if (port.internal === 'reject') services[family.family].add(element(port.clusterIP));
      if (port.internal === 'drop') dropped[family.family].add(element(port.clusterIP));
      if (port.external?.verdict !== 'reject') continue;
      for (const ip of port.externalIPs) services[family.family].add(element(ip));
      if (port.nodePort > 0) nodePorts.add(`${port.protocol} . ${port.nodePort}`);
    }
  }
  const sorted = (elements: Iterable<string>) => [...new Set(elements)].sort();
  const ofFamily = (name: 'IPv4' | 'IPv6') => rules.families.find((family) => family.family === name);
  return templates.ebpfCompanion({
    node: rules.node,
    maps: [
      { name: 'no-endpoint-services-v4', type: 'ipv4_addr . inet_proto . inet_service', elements: sorted(services.IPv4) },
      { name: 'no-endpoint-services-v6', type: 'ipv6_addr . inet_proto . inet_service', elements: sorted(services.IPv6) },
      { name: 'no-endpoint-nodeports', type: 'inet_proto . inet_service', elements: sorted(nodePorts) },
    ],
    sets: [
      { name: 'dropped-services-v4', type: 'ipv4_addr . inet_proto . inet_service', elements: sorted(dropped.IPv4) },
      { name: 'dropped-services-v6', type: 'ipv6_addr . inet_proto . inet_service', elements: sorted(dropped.IPv6) },
      { name: 'cluster-ips-v4', type: 'ipv4_addr', elements: sorted(ofFamily('IPv4')?.clusterIPs ?? []) },
      { name: 'cluster-ips-v6', type: 'ipv6_addr', elements: sorted(ofFamily('IPv6')?.clusterIPs ?? []) },
      { name: 'service-cidrs-v4', type: 'ipv4_addr', interval: true, elements: sorted(ofFamily('IPv4')?.serviceCIDRs ?? []) },
      { name: 'service-cidrs-v6', type: 'ipv6_addr', interval: true, elements: sorted(ofFamily('IPv6')?.serviceCIDRs ?? []) },
    ],
  });
}
