// Incremental iptables updates: from the previous rendering to the next one made from it, only the
// chains of the ports that changed (declared, which flushes them, and written again; the ones that went
// removed), the shared chains whose lines from those ports changed (written whole), and FERRY-CLUSTER-IPS
// when the cluster IPs changed. Pure: the iptables-restore --noflush input, as planRestore writes it.
import { splitPortKey } from '../../rules/port-changes.js';
import { partOf } from '../port-parts.js';
import { aheadTransactions, STAGE } from './ahead.js';
import { clusterIPRules, sharedChainRules, SHARED_CHAINS, type IptablesFamilyRendering, type IptablesRendering, type IptablesTable, type SharedChain } from './render.js';

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((item, index) => item === b[index]);

/** The family-wide lines but the cluster IPs: where they differ, the update is not port by port. */
const sameHead = (a: IptablesFamilyRendering['head'], b: IptablesFamilyRendering['head']) => a.mark === b.mark && sameList(a.serviceCIDRs, b.serviceCIDRs)
  && JSON.stringify(a.nodePortMatches) === JSON.stringify(b.nodePortMatches);

/**
 * The restore input that turns `previous`'s rules of `family` into `next`'s, when `next` was rendered
 * from `previous` (its update names it) and the family-wide lines are the same; undefined otherwise
 * (then planRestore compares the whole texts). '' when nothing changed.
 */
export function partialRestore(previous: IptablesRendering, next: IptablesRendering, family: 'IPv4' | 'IPv6'): string | undefined {
  if (next.update?.from !== previous.id) return undefined;
  const before = previous.families.find((candidate) => candidate.rules.family === family);
  const after = next.families.find((candidate) => candidate.rules.family === family);
  if (!before || !after || !sameHead(before.head, after.head)) return undefined;
  const tables = new Map<IptablesTable, { declare: string[]; rules: string[]; remove: string[] }>(
    (['mangle', 'filter', 'nat'] as const).map((table) => [table, { declare: [], rules: [], remove: [] }]));
  const dirty = new Set<SharedChain>();
  const ports = [...next.update.changed].map(splitPortKey).filter((key) => key.family === family)
    .map(({ id }) => ({ old: partOf(before.rules, before.ports, id), part: partOf(after.rules, after.ports, id) }));
  // Many new ports' chains go ahead in transactions of their own, as planRestore's new chains do.
  const aheadOf = (table: 'mangle' | 'nat') => ports.filter(({ old, part }) => !old && part).map(({ part }) => part!.own[table]);
  const ahead = { mangle: aheadOf('mangle'), nat: aheadOf('nat') };
  for (const table of ['mangle', 'nat'] as const) if (ahead[table].reduce((chains, own) => chains + own.chains.length, 0) <= STAGE) ahead[table] = [];
  const goesAhead = new Set([...ahead.mangle, ...ahead.nat]);
  for (const { old, part } of ports) {
    for (const table of ['mangle', 'nat'] as const) {
      const was = old?.own[table] ?? { chains: [], rules: '' };
      const will = part?.own[table] ?? { chains: [], rules: '' };
      if (was.rules === will.rules && sameList(was.chains, will.chains)) continue;
      if (goesAhead.has(will)) continue;
      const plan = tables.get(table)!;
      const kept = new Set(will.chains);
      plan.declare.push(...will.chains);
      for (const chain of was.chains) {
        if (kept.has(chain)) continue;
        plan.declare.push(chain);
        plan.remove.push(chain);
      }
      plan.rules.push(will.rules);
    }
    for (const chain of Object.keys(SHARED_CHAINS) as SharedChain[]) if ((old?.shared[chain] ?? '') !== (part?.shared[chain] ?? '')) dirty.add(chain);
  }
  for (const chain of dirty) {
    const plan = tables.get(SHARED_CHAINS[chain])!;
    plan.declare.push(chain);
    plan.rules.push(sharedChainRules(after, chain));
  }
  if (!sameList(before.head.clusterIPs, after.head.clusterIPs)) {
    const plan = tables.get('filter')!;
    plan.declare.push('FERRY-CLUSTER-IPS');
    plan.rules.push(clusterIPRules(after));
  }
  const out: string[] = [];
  for (const [table, plan] of tables) {
    if (table !== 'filter') out.push(...aheadTransactions(table, ahead[table]));
    if (plan.declare.length === 0) continue;
    // Declared first (a declaration flushes the chain), then every rule, then the chains that went: by
    // then nothing jumps to them (the chains that did were flushed and written again).
    out.push(`*${table}`, ...plan.declare.map((chain) => `:${chain} - [0:0]`), plan.rules.join('').replace(/\n$/, ''), ...plan.remove.map((chain) => `-X ${chain}`), 'COMMIT');
  }
  return out.length ? `${out.filter((line) => line !== '').join('\n')}\n` : '';
}
