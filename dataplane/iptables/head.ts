// What every iptables family's tables hold beside the ports' rules, as objects: the chains declared,
// the jumps into them from the kernel's chains, and the chain shared lines and node ports lead to.
// iptables-table.hbs prints them; the structure check reads them, never the text.

export type IptablesTable = 'mangle' | 'filter' | 'nat';

/** The kernel's own chains: never declared, always there. */
export const BUILTIN_CHAINS: ReadonlySet<string> = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/** The chain that marks a connection for masquerading: ports' chains jump to it. */
export const MARK_CHAIN = 'FERRY-MARK-MASQ';
/** The chain FERRY-SERVICES ends in, for node ports. */
export const NODEPORTS_CHAIN = 'FERRY-NODEPORTS';

/** The chains each table declares besides the ports' own (the ports' shared lines go into these too). */
export const HEAD_CHAINS: Readonly<Record<IptablesTable, readonly string[]>> = {
  mangle: ['FERRY-FIREWALL'],
  filter: ['FERRY-NO-ENDPOINTS', 'FERRY-CLUSTER-IPS'],
  nat: ['FERRY-SERVICES', NODEPORTS_CHAIN, 'FERRY-POSTROUTING', MARK_CHAIN],
};

/** A rule in one of the kernel's chains that leads into ferry's; `newOnly`: a connection's first packet only. */
export interface HookJump {
  chain: string;
  newOnly?: true;
  comment: string;
  jump: string;
}

const newConnections = (chains: string[], comment: string, jump: string): HookJump[] => chains.map((chain) => ({ chain, newOnly: true, comment, jump }));

/** The hooks by table, in the order printed. */
export const HOOK_JUMPS: Readonly<Record<IptablesTable, readonly HookJump[]>> = {
  // Before DNAT, so that the firewall sees the load-balancer IP.
  mangle: newConnections(['PREROUTING', 'OUTPUT'], 'ferry load-balancer firewall', 'FERRY-FIREWALL'),
  filter: [
    ...newConnections(['INPUT', 'FORWARD'], 'ferry services without endpoints', 'FERRY-NO-ENDPOINTS'),
    ...newConnections(['FORWARD'], 'ferry cluster IPs', 'FERRY-CLUSTER-IPS'),
    ...newConnections(['OUTPUT'], 'ferry services without endpoints', 'FERRY-NO-ENDPOINTS'),
    ...newConnections(['OUTPUT'], 'ferry cluster IPs', 'FERRY-CLUSTER-IPS'),
  ],
  nat: [
    { chain: 'PREROUTING', comment: 'ferry service portals', jump: 'FERRY-SERVICES' },
    { chain: 'OUTPUT', comment: 'ferry service portals', jump: 'FERRY-SERVICES' },
    { chain: 'POSTROUTING', comment: 'ferry postrouting rules', jump: 'FERRY-POSTROUTING' },
  ],
};

/** The rules of FERRY-MARK-MASQ (one) and FERRY-POSTROUTING (three), which iptables-table.hbs prints as they are. */
export const MASQUERADE_RULES = 4;
