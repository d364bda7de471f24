// The head of a family's nftables table as objects: its base and table-wide chains, each rule a record
// whose fields name what it refers to (a chain it jumps to, a set or map it looks up). nft-table-open.hbs
// prints them; the structure check, the re-assert and the rules metric read these objects, never text.

/** Where a node port is matched: local addresses in a set, local addresses in CIDRs, or any local address but loopback. */
export interface NodePortMatch {
  set?: string;
  cidrs?: string;
  notLoopback?: string;
}

/**
 * One rule of a head chain, as nft-table-open.hbs prints it (the fields in the order printed). A rule
 * has at most one of the statements after its matches.
 */
export interface HeadRule {
  /** `ct state new`: only a connection's first packet. */
  newOnly?: true;
  /** `ct status dnat` and the pair of source and destination in this set (a hairpin). */
  hairpinSet?: string;
  /** The destination address in this set, or in these CIDRs (printed as given). */
  daddrSet?: string;
  daddrCIDRs?: string;
  /** A verdict map looked up by destination address, protocol and port; by node port with `nodePorts`. */
  vmap?: string;
  nodePorts?: true;
  jump?: string;
  /** The mark: set (`|`), returned from when not set, cleared (`^`). */
  setMark?: string;
  returnUnmarked?: string;
  clearMark?: string;
  reject?: true;
  drop?: true;
  masquerade?: true;
  comment?: string;
}

export interface HeadChain {
  name: string;
  /** A base chain's type, hook and priority (`policy accept` always). */
  base?: { type: 'nat' | 'filter'; hook: string; priority: string };
  /** A comment printed above the chain. */
  note?: string;
  rules: HeadRule[];
}

/** The chain that marks a connection for masquerading: ports' chains jump to it too. */
export const MARK_CHAIN = 'mark-for-masquerade';
/** The chain a verdict map sends a packet to for a reject (a verdict map cannot hold `reject`). */
export const REJECT_CHAIN = 'reject-chain';

/** The head's chains for a family's table. */
export function headChains(options: { mark: string; nodePortMatch: NodePortMatch | undefined; serviceCIDRs: string }): HeadChain[] {
  const { mark, nodePortMatch, serviceCIDRs } = options;
  const nodePorts = (vmap: string): HeadRule[] => (nodePortMatch ? [{ vmap, nodePorts: true }] : []);
  const newJumps = (...chains: string[]): HeadRule[] => chains.map((jump) => ({ newOnly: true, jump }));
  return [
    { name: 'nat-prerouting', base: { type: 'nat', hook: 'prerouting', priority: 'dstnat' }, rules: [{ jump: 'services' }] },
    { name: 'nat-output', base: { type: 'nat', hook: 'output', priority: '-100' }, rules: [{ jump: 'services' }] },
    { name: 'nat-postrouting', base: { type: 'nat', hook: 'postrouting', priority: 'srcnat' }, rules: [{ jump: 'masquerading' }] },
    {
      name: 'filter-prerouting-pre-dnat', base: { type: 'filter', hook: 'prerouting', priority: '-110' }, rules: newJumps('firewall-check'),
      note: 'DNAT runs at priority -100: the firewall sees the original destination, cluster-ips-check the translated one.',
    },
    { name: 'filter-output-pre-dnat', base: { type: 'filter', hook: 'output', priority: '-110' }, rules: newJumps('firewall-check') },
    { name: 'filter-input', base: { type: 'filter', hook: 'input', priority: 'filter - 10' }, rules: newJumps('nodeport-endpoints-check', 'service-endpoints-check') },
    { name: 'filter-forward', base: { type: 'filter', hook: 'forward', priority: 'filter - 10' }, rules: newJumps('service-endpoints-check', 'cluster-ips-check') },
    { name: 'filter-output-post-dnat', base: { type: 'filter', hook: 'output', priority: '-90' }, rules: newJumps('service-endpoints-check', 'cluster-ips-check') },
    { name: 'firewall-check', rules: [{ vmap: 'firewall-ips' }] },
    { name: 'service-endpoints-check', rules: [{ vmap: 'no-endpoint-services' }] },
    { name: 'nodeport-endpoints-check', rules: nodePorts('no-endpoint-nodeports') },
    {
      name: 'cluster-ips-check',
      rules: [
        { daddrSet: 'cluster-ips', reject: true, comment: 'port not served by the cluster IP' },
        ...(serviceCIDRs ? [{ daddrCIDRs: serviceCIDRs, drop: true as const, comment: 'unallocated address in a service CIDR' }] : []),
      ],
    },
    { name: REJECT_CHAIN, rules: [{ reject: true }] },
    { name: MARK_CHAIN, rules: [{ setMark: mark }] },
    {
      name: 'masquerading',
      rules: [
        { hairpinSet: 'hairpin-endpoints', jump: MARK_CHAIN, comment: 'hairpin traffic' },
        { returnUnmarked: mark },
        { clearMark: mark },
        { masquerade: true },
      ],
    },
    { name: 'services', rules: [{ vmap: 'service-ips' }, ...nodePorts('service-nodeports')] },
  ];
}

/** What a head's rules refer to: the chains they jump to and the sets and maps they look up. */
export function headReferences(chains: readonly HeadChain[], nodePortMatch: NodePortMatch | undefined): { chains: string[]; sets: string[] } {
  const rules = chains.flatMap((chain) => chain.rules);
  return {
    chains: rules.flatMap((rule) => (rule.jump ? [rule.jump] : [])),
    sets: rules.flatMap((rule) => [rule.hairpinSet, rule.daddrSet, rule.vmap, rule.nodePorts ? nodePortMatch?.set : undefined].filter((name): name is string => name !== undefined)),
  };
}
