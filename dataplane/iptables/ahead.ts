// New iptables chains written ahead of the rest of a restore, in transactions of their own. Pure.

/** How iptables-restore declares (and, with --noflush, flushes) a chain. */
export const declaration = (chain: string) => `:${chain} - [0:0]`;

/**
 * New chains per transaction, when a table gets more than this many. iptables-nft (1.8.9) keeps the
 * names of the chains a transaction names in a sorted list that it walks once per line, so one
 * transaction of n chains costs n² comparisons: 3,000 Services' chains took 155 s to restore. A new
 * chain is out of every packet's way until a rule jumps to it, so new chains can go ahead, leaves first,
 * and each table's last transaction adds the jumps to them. A failure on the way leaves only chains
 * nothing jumps to, which the next plan finds and writes or removes.
 */
export const STAGE = 200;

/** New chains that go ahead together: declared before their rules (lines), which jump only to chains that exist by then. */
export interface AheadGroup {
  chains: readonly string[];
  rules: string;
}

/** The transactions of `table` that write `groups` ahead of the rest, one text each, at most STAGE chains in each (a group is not split). */
export function aheadTransactions(table: string, groups: readonly AheadGroup[]): string[] {
  const out: string[] = [];
  let batch: AheadGroup[] = [];
  let chains = 0;
  const close = () => {
    if (batch.length === 0) return;
    const rules = batch.map((group) => group.rules.replace(/\n$/, '')).filter((text) => text !== '');
    out.push([`*${table}`, ...batch.flatMap((group) => group.chains.map(declaration)), ...rules, 'COMMIT'].join('\n'));
    batch = [];
    chains = 0;
  };
  for (const group of groups) {
    if (chains > 0 && chains + group.chains.length > STAGE) close();
    batch.push(group);
    chains += group.chains.length;
  }
  close();
  return out;
}

/** `chains` ordered so that each comes after the ones among them that it jumps to (stable otherwise). */
export function leavesFirst(chains: string[], rules: Map<string, string[]>): string[] {
  const among = new Set(chains);
  const depths = new Map<string, number>();
  const depth = (chain: string, path: Set<string>): number => {
    const known = depths.get(chain);
    if (known !== undefined) return known;
    // A loop: the kernel refuses it, whatever the order.
    if (path.has(chain)) return 0;
    path.add(chain);
    let deepest = 0;
    for (const rule of rules.get(chain)!) {
      const target = jumpTarget(rule);
      if (target !== undefined && among.has(target)) deepest = Math.max(deepest, depth(target, path) + 1);
    }
    depths.set(chain, deepest);
    return deepest;
  };
  return chains.map((chain, index) => ({ chain, index, depth: depth(chain, new Set()) }))
    .sort((a, b) => a.depth - b.depth || a.index - b.index).map(({ chain }) => chain);
}

/** The chain or target a rule jumps or goes to: the word after its last -j or -g (a target's options follow it). */
function jumpTarget(rule: string): string | undefined {
  const at = Math.max(rule.lastIndexOf(' -j '), rule.lastIndexOf(' -g '));
  return at < 0 ? undefined : rule.slice(at + 4).split(' ', 1)[0];
}
