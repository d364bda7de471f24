// Migrating a node from kube-proxy: remove the rules kube-proxy's iptables and nftables modes leave
// behind (as `kube-proxy --cleanup` does), and nothing that belongs to the kubelet, the CNI or anyone
// else. IPVS (virtual servers, the kube-ipvs0 device, ipsets) is not touched.
import { DataplaneError, runChecked, type Runner } from './runner.js';

const BUILT_IN = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

// kube-proxy's own chains per table (pkg/proxy/iptables); KUBE-FIREWALL, KUBE-KUBELET-CANARY and
// KUBE-MARK-DROP are the kubelet's and stay.
const NAMED: Record<string, Set<string>> = {
  nat: new Set(['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ', 'KUBE-PROXY-CANARY']),
  filter: new Set(['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL', 'KUBE-PROXY-CANARY']),
  mangle: new Set(['KUBE-PROXY-CANARY']),
};
const PER_SERVICE = /^KUBE-(SVC|SVL|EXT|FW|SEP)-[A-Z0-9]+$/;

/** Whether kube-proxy made this chain in this table. */
export function isKubeProxyChain(table: string, chain: string): boolean {
  return NAMED[table]?.has(chain) === true || (table === 'nat' && PER_SERVICE.test(chain));
}

/**
 * The iptables-restore --noflush input that removes kube-proxy's chains from `saved` (iptables-save
 * output): their rules are flushed, the jumps into them from built-in chains deleted, then the chains.
 * A chain that someone else's chain still jumps to is kept, with what it jumps to, so that nothing
 * outside kube-proxy breaks; empty when there is nothing of kube-proxy's.
 */
export function kubeProxyRemoval(saved: string): string {
  const out: string[] = [];
  for (const [table, lines] of tables(saved)) {
    const chains = lines.filter((line) => line.startsWith(':')).map((line) => line.slice(1).split(' ')[0]!);
    const rules = lines.filter((line) => line.startsWith('-A '));
    const jumps = (rule: string) => [...rule.matchAll(/ -[jg] (\S+)/g)].map((match) => match[1]!);
    const remove = new Set(chains.filter((chain) => isKubeProxyChain(table, chain)));
    // Keep whatever a chain that stays still refers to, until nothing more changes.
    for (let changed = true; changed;) {
      changed = false;
      for (const rule of rules) {
        const chain = rule.split(' ')[1]!;
        if (remove.has(chain) || BUILT_IN.has(chain)) continue;
        for (const target of jumps(rule)) changed = remove.delete(target) || changed;
      }
    }
    if (remove.size === 0) continue;
    const unhook = rules.filter((rule) => BUILT_IN.has(rule.split(' ')[1]!) && jumps(rule).some((target) => remove.has(target)));
    out.push(`*${table}`, ...[...remove].map((chain) => `:${chain} - [0:0]`), ...unhook.map((rule) => `-D${rule.slice(2)}`), ...[...remove].map((chain) => `-X ${chain}`), 'COMMIT');
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

function tables(saved: string): Map<string, string[]> {
  const result = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of saved.split('\n')) {
    if (line.startsWith('*')) result.set(line.slice(1).trim(), (current = []));
    else if (current && (line.startsWith(':') || line.startsWith('-A '))) current.push(line);
  }
  return result;
}

// kube-proxy uses whichever iptables the node's other components use: look in both.
const VARIANTS = [
  { save: 'iptables-legacy-save', restore: 'iptables-legacy-restore' },
  { save: 'ip6tables-legacy-save', restore: 'ip6tables-legacy-restore' },
  { save: 'iptables-nft-save', restore: 'iptables-nft-restore' },
  { save: 'ip6tables-nft-save', restore: 'ip6tables-nft-restore' },
];

/** What `ferry cleanup --kube-proxy` removed, for its report. */
export interface KubeProxyCleanup {
  /** Per iptables variant (iptables-nft, ip6tables-legacy, ...), the chains removed. */
  iptables: Map<string, number>;
  nftables: string[];
}

/** Removes kube-proxy's iptables chains (legacy and nft variants, both families) and its nftables tables. */
export async function cleanupKubeProxy(runner: Runner): Promise<KubeProxyCleanup> {
  const report: KubeProxyCleanup = { iptables: new Map(), nftables: [] };
  for (const { save, restore } of VARIANTS) {
    const saved = await runner.run(save, []);
    // A variant that is not installed, or whose kernel module is missing, holds nothing of kube-proxy's.
    if (saved.exitCode !== 0) continue;
    const plan = kubeProxyRemoval(saved.stdout);
    if (!plan) continue;
    await runChecked(runner, `removing kube-proxy's chains with ${restore} failed`, restore, ['-w', '5', '--noflush'], plan);
    report.iptables.set(save.replace(/-save$/, ''), plan.split('\n').filter((line) => line.startsWith('-X ')).length);
  }
  // Deleting outright, not listing first: nft 1.0.6 answers any listing by fetching every rule of the
  // ruleset, ferry's included (seconds at 10,000 Services), and this runs at every agent start.
  const owned: string[] = [];
  for (const family of ['ip', 'ip6']) {
    const deleted = await runner.run('nft', ['delete', 'table', family, 'kube-proxy']);
    if (deleted.exitCode === 0) owned.push(`${family} kube-proxy`);
    else if (!/No such file or directory/.test(deleted.stderr)) throw new DataplaneError(`nft delete table ${family} kube-proxy`, deleted, 'removing kube-proxy\'s nftables tables failed');
  }
  report.nftables = owned;
  return report;
}
