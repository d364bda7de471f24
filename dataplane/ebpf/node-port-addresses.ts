// Which of the node's addresses node ports answer at, for both eBPF paths. Pure.
import ipaddr from 'ipaddr.js';
import type { NodePortAddresses } from '../../rules/node-rules.js';

/** The node addresses where node ports answer, as nodePortAddresses says (kube-proxy's `--nodeport-addresses`). */
export function nodePortAddresses(addresses: readonly string[], allowed: NodePortAddresses): string[] {
  if (allowed.kind === 'all') return [...addresses];
  if (allowed.kind === 'addresses') return addresses.filter((address) => allowed.addresses.includes(address));
  const cidrs = allowed.cidrs.map((cidr) => ipaddr.parseCIDR(cidr));
  return addresses.filter((address) => {
    const parsed = ipaddr.parse(address);
    return cidrs.some(([network, length]) => network.kind() === parsed.kind() && parsed.match(network, length));
  });
}
