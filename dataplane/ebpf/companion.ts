// The eBPF backend's companion nftables table (templates/ebpf-companion.hbs): conntrack and NAT on for
// the entries the packet program inserts; kube-proxy's reject for Services without endpoints and for
// ports a cluster IP does not serve, which the programs let pass untranslated, and its drop of
// unallocated service addresses. Pure.
import { compareAddresses } from '../../controlplane/model/ip.js';
import type { IPFamily } from '../../controlplane/model/types.js';
import type { FamilyRules, NodeRules, ServicePortRules } from '../../rules/node-rules.js';
import { findPort, lowerBound, splitPortKey } from '../../rules/port-changes.js';
import { templates } from '../templates.js';

/** What one Service port puts into the companion table's maps and sets. */
function portEntries(port: ServicePortRules): { services: string[]; dropped: string[]; nodePorts: string[] } {
  const element = (ip: string) => `${ip} . ${port.protocol} . ${port.port}`;
  const entries = { services: [] as string[], dropped: [] as string[], nodePorts: [] as string[] };
  if (port.internal === 'reject') entries.services.push(element(port.clusterIP));
  // A cluster IP whose internal policy is Local with no endpoint here: the socket programs let it through untranslated.
  if (port.internal === 'drop') entries.dropped.push(element(port.clusterIP));
  if (port.external?.verdict === 'reject') {
    for (const ip of port.externalIPs) entries.services.push(element(ip));
    if (port.nodePort > 0) entries.nodePorts.push(`${port.protocol} . ${port.nodePort}`);
  }
  return entries;
}

const suffix = (family: IPFamily) => (family === 'IPv4' ? 'v4' : 'v6');

/** The companion table's nft -f script for these rules. */
export function companionScript(rules: NodeRules): string {
  const services = { IPv4: new Set<string>(), IPv6: new Set<string>() };
  const dropped = { IPv4: new Set<string>(), IPv6: new Set<string>() };
  const nodePorts = new Set<string>();
  for (const family of rules.families) {
    for (const port of family.servicePorts) {
      const entries = portEntries(port);
      for (const element of entries.services) services[family.family].add(element);
      for (const element of entries.dropped) dropped[family.family].add(element);
      for (const element of entries.nodePorts) nodePorts.add(element);
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

/**
 * The element commands that take the companion table from `previous` to `next` when only the ports in
 * `changed` differ (their elements, and cluster IPs that came or went), or undefined when the table must
 * be loaded whole (the service CIDRs changed).
 */
export function companionChanges(previous: NodeRules, next: NodeRules, changed: ReadonlySet<string>): string | undefined {
  // By map or set name: what the changed ports held there before and hold now (no-endpoint-nodeports
  // is shared by both families: a dual-stack Service puts the same element there twice).
  const held = new Map<string, { was: Set<string>; is: Set<string>; verdict: boolean }>();
  const note = (name: string, verdict: boolean, was: Iterable<string>, is: Iterable<string>) => {
    const entry = held.get(name) ?? { was: new Set<string>(), is: new Set<string>(), verdict };
    for (const element of was) entry.was.add(element);
    for (const element of is) entry.is.add(element);
    held.set(name, entry);
  };
  for (const after of next.families) {
    const before = previous.families.find((family) => family.family === after.family);
    if (!before || before.serviceCIDRs.join() !== after.serviceCIDRs.join()) return undefined;
    const pairs = [...changed].map(splitPortKey).filter((key) => key.family === after.family).map(({ id }) => [findPort(before, id), findPort(after, id)] as const);
    const entries = pairs.map(([old, port]) => [old ? portEntries(old) : undefined, port ? portEntries(port) : undefined] as const);
    for (const [kind, name, verdict] of [['services', `no-endpoint-services-${suffix(after.family)}`, true], ['dropped', `dropped-services-${suffix(after.family)}`, false], ['nodePorts', 'no-endpoint-nodeports', true]] as const) {
      note(name, verdict, entries.flatMap(([old]) => old?.[kind] ?? []), entries.flatMap(([, port]) => port?.[kind] ?? []));
    }
    // A cluster IP is in the set while any port of the family has it.
    const holds = (family: FamilyRules, ip: string) => family.clusterIPs[lowerBound(family.clusterIPs, ip, compareAddresses)] === ip;
    const addresses = [...new Set(pairs.flatMap((pair) => pair.flatMap((port) => (port ? [port.clusterIP] : []))))];
    note(`cluster-ips-${suffix(after.family)}`, false, addresses.filter((ip) => holds(before, ip)), addresses.filter((ip) => holds(after, ip)));
  }
  const commands: string[] = [];
  for (const [name, { was, is, verdict }] of held) {
    const gone = [...was].filter((element) => !is.has(element));
    const added = [...is].filter((element) => !was.has(element));
    if (gone.length > 0) commands.push(`delete element inet ferry-ebpf ${name} { ${gone.join(', ')} }`);
    if (added.length > 0) commands.push(`add element inet ferry-ebpf ${name} { ${added.map((element) => (verdict ? `${element} : goto reject-chain` : element)).join(', ')} }`);
  }
  return commands.length > 0 ? `${commands.join('\n')}\n` : '';
}
