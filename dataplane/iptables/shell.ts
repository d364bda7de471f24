// iptables shell: apply, read back and clean up ferry's FERRY-* chains and the jumps into them, per family.
import { runChecked, runInThrowawayNamespace, type Runner } from '../runner.js';
import { aheadTransactions, declaration, leavesFirst, STAGE } from './ahead.js';

export type Family = 'IPv4' | 'IPv6';

const COMMANDS: Record<Family, { save: string; restore: string }> = {
  IPv4: { save: 'iptables-save', restore: 'iptables-restore' },
  IPv6: { save: 'ip6tables-save', restore: 'ip6tables-restore' },
};

// Wait up to 5 s for the xtables lock rather than fail when another tool holds it.
const RESTORE_FLAGS = ['-w', '5', '--noflush'];

/** The ferry-owned part of one iptables table. */
interface FerryTable {
  /** FERRY-* chains, in listing order. */
  chains: string[];
  /** Rules in built-in chains that jump into a FERRY-* chain, as `-A CHAIN ...` lines, in order. */
  hooks: string[];
  /** Rules of each FERRY-* chain, in order. */
  rules: Map<string, string[]>;
}

const isFerryChain = (chain: string) => chain.startsWith('FERRY-');

/** Reads iptables-save (or rendered restore) text into ferry's view of each table. */
export function parseFerryTables(text: string): Map<string, FerryTable> {
  const tables = new Map<string, FerryTable>();
  let table: FerryTable | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = { chains: [], hooks: [], rules: new Map() };
      tables.set(line.slice(1).trim(), table);
    } else if (table && line.startsWith(':')) {
      const chain = line.slice(1).split(' ')[0]!;
      if (isFerryChain(chain)) {
        table.chains.push(chain);
        table.rules.set(chain, []);
      }
    } else if (table && line.startsWith('-A ')) {
      const chain = line.split(' ')[1]!;
      // Rules of an undeclared chain are kept, so that the kernel, not this parser, refuses them.
      // Appended in place: a copy per rule would make FERRY-SERVICES (a rule per Service address) quadratic.
      if (isFerryChain(chain)) {
        const rules = table.rules.get(chain);
        if (rules) rules.push(line);
        else table.rules.set(chain, [line]);
      } else if (/ -j FERRY-/.test(line)) table.hooks.push(line);
    }
  }
  return tables;
}

/** A stable text of ferry's rules: chains sorted by name, each chain's rules in order. */
export function canonicalIptables(text: string): string {
  const out: string[] = [];
  const tables = parseFerryTables(text);
  for (const name of [...tables.keys()].sort()) {
    const table = tables.get(name)!;
    if (table.chains.length === 0 && table.hooks.length === 0) continue;
    const chains = [...table.chains].sort();
    // Line by line: a table can hold more chains, and a chain more rules, than a call can take arguments.
    out.push(`*${name}`);
    for (const chain of chains) out.push(`:${chain} - [0:0]`);
    for (const line of table.hooks) out.push(line);
    for (const chain of chains) for (const line of table.rules.get(chain)!) out.push(line);
    out.push('COMMIT');
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/**
 * The iptables-restore --noflush input that turns `current` (iptables-save output) into `desired`
 * (rendered rules): desired chains are declared (which flushes them), jumps from built-in chains are
 * replaced only where they differ, and FERRY-* chains that are no longer wanted are flushed and deleted.
 * Everything that is not ferry's is never named, so it is left alone. `everyChain` (apply --force):
 * every desired chain is written, also one that holds its rules already. Many new chains are written
 * ahead of the rest in transactions of their own (see STAGE); everything that changes what a packet
 * meets is in each table's last transaction.
 */
export function planRestore(current: string, desired: string, everyChain = false): string {
  const now = parseFerryTables(current);
  const want = parseFerryTables(desired);
  const out: string[] = [];
  for (const name of new Set([...want.keys(), ...now.keys()])) {
    const before = now.get(name) ?? { chains: [], hooks: [], rules: new Map() };
    const after = want.get(name) ?? { chains: [], hooks: [], rules: new Map() };
    const stale = before.chains.filter((chain) => !after.rules.has(chain));
    if (after.chains.length === 0 && before.chains.length === 0 && before.hooks.length === 0) continue;
    const fresh = after.chains.filter((chain) => !before.rules.has(chain));
    const staged = fresh.length > STAGE ? leavesFirst(fresh, after.rules) : [];
    for (const transaction of aheadTransactions(name, staged.map((chain) => ({ chains: [chain], rules: after.rules.get(chain)!.join('\n') })))) out.push(transaction);
    const ahead = new Set(staged);
    const differs = (chain: string) => !ahead.has(chain)
      && (everyChain || before.rules.get(chain)?.join('\n') !== after.rules.get(chain)?.join('\n'));
    const changed = after.chains.filter(differs);
    // Loops, not spreads into push(): a table of 10,000 Services has more lines than a call takes arguments.
    const lines = [...changed, ...stale].map(declaration).concat(hookChanges(before.hooks, after.hooks));
    for (const [chain, rules] of after.rules) {
      // A chain that already holds exactly these rules is left alone (not even flushed).
      if (differs(chain)) for (const rule of rules) lines.push(rule);
    }
    for (const chain of stale) lines.push(`-X ${chain}`);
    // A table with nothing to change is not named at all: an unchanged rule set restores nothing.
    if (lines.length) out.push(`*${name}`, lines.join('\n'), 'COMMIT');
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** Per built-in chain: keep ferry's jumps if they are exactly as wanted, else delete and re-insert at the top. */
function hookChanges(before: string[], after: string[]): string[] {
  const byChain = (lines: string[]) => {
    const map = new Map<string, string[]>();
    for (const line of lines) {
      const chain = line.split(' ')[1]!;
      map.set(chain, [...(map.get(chain) ?? []), line.slice(`-A ${chain} `.length)]);
    }
    return map;
  };
  const was = byChain(before);
  const will = byChain(after);
  const changes: string[] = [];
  for (const chain of new Set([...was.keys(), ...will.keys()])) {
    const old = was.get(chain) ?? [];
    const wanted = will.get(chain) ?? [];
    if (old.join('\n') === wanted.join('\n')) continue;
    changes.push(...old.map((spec) => `-D ${chain} ${spec}`));
    // Inserting each at position 1 reverses them, so insert the last first.
    changes.push(...[...wanted].reverse().map((spec) => `-I ${chain} 1 ${spec}`));
  }
  return changes;
}

/** The rules of a family as iptables-save prints them now. */
export async function saveIptables(runner: Runner, family: Family): Promise<string> {
  return runChecked(runner, `reading the ${family} rules failed`, COMMANDS[family].save, []);
}

/**
 * The kernel's verdict on the rendered rules of a family: loaded into an empty network namespace that
 * lives only for the command. `iptables-restore --test` is no such check: it parses, but the nf_tables
 * variant accepts rules there (MASQUERADE outside postrouting) that the kernel then refuses.
 */
export async function checkIptables(runner: Runner, family: Family, desired: string): Promise<void> {
  await runInThrowawayNamespace(runner, `the kernel rejected the ${family} iptables rules`, COMMANDS[family].restore, ['--noflush'], planRestore('', desired));
}

/**
 * Applies the transition to `desired` in one iptables-restore. With `previous` (the rules last
 * applied), only what changed since is written; without it the kernel's current rules are read, which
 * also repairs anything someone else changed. `--test` first: what the tool refuses reaches no table.
 * Each table's lines are a transaction of their own (and many new chains go ahead in theirs, see
 * planRestore), so a rule only the kernel refuses can leave earlier tables updated: the backend loads
 * the rules into a throwaway namespace before this, which is what keeps that from happening.
 */
export async function applyIptables(runner: Runner, family: Family, desired: string, previous?: string): Promise<void> {
  await restorePlan(runner, family, planRestore(previous ?? await saveIptables(runner, family), desired));
}

/** Restores a planRestore plan (`--test` first, see applyIptables); an empty plan restores nothing. */
export async function restorePlan(runner: Runner, family: Family, plan: string): Promise<void> {
  if (!plan) return;
  const restore = COMMANDS[family].restore;
  await runChecked(runner, `iptables-restore refused the ${family} rules`, restore, [...RESTORE_FLAGS, '--test'], plan);
  await runChecked(runner, `applying the ${family} iptables rules failed`, restore, RESTORE_FLAGS, plan);
}

/** Removes ferry's chains and the jumps into them, and nothing else. */
export async function cleanupIptables(runner: Runner, family: Family): Promise<void> {
  await applyIptables(runner, family, '');
}

/** ferry's rules of a family in this namespace, canonicalised. */
export async function readIptables(runner: Runner, family: Family): Promise<string> {
  return canonicalIptables(await saveIptables(runner, family));
}

/** How the kernel saves the rendered rules once loaded into an empty namespace: the desired side of a diff. */
export async function listAsKernelWould(runner: Runner, family: Family, desired: string): Promise<string> {
  const { save, restore } = COMMANDS[family];
  return canonicalIptables(await runInThrowawayNamespace(runner, `the kernel rejected the ${family} iptables rules`, 'sh', ['-c', `${restore} --noflush && ${save}`], planRestore('', desired)));
}
