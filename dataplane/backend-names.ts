// The backends' names, declared once: the CLI's choices, the config's `mode`, the registry's keys.
export const BACKEND_NAMES = ['nftables', 'iptables', 'ebpf'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** What ferry uses when neither a flag nor the config's `mode` names a backend. */
export const DEFAULT_BACKEND: BackendName = 'nftables';

/** The section of kube-proxy's configuration (`iptables:` or `nftables:`) whose masquerade settings a backend follows (ebpf: nftables', as its companion table). */
export const CONFIG_SECTION: Readonly<Record<BackendName, 'iptables' | 'nftables'>> = { nftables: 'nftables', iptables: 'iptables', ebpf: 'nftables' };
