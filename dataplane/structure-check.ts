// Structure checks on rendered text: catch a dangling jump or an over-long name before the kernel sees it.
import type { Backend } from './render.js';

/** The rendered rules are inconsistent: a bug in ferry, never the user's input. */
export class StructureError extends Error {}

// iptables chain names: XT_EXTENSION_MAXNAMELEN is 29 bytes including the terminating NUL.
const IPTABLES_MAX_CHAIN = 28;
const BUILTIN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/** Throws a StructureError naming every problem found. */
export function checkStructure(text: string, backend: Backend): void {
  const problems = backend === 'nftables' ? nftProblems(text) : iptablesProblems(text);
  if (problems.length > 0) throw new StructureError(`rendered ${backend} rules are inconsistent:\n  ${problems.join('\n  ')}`);
}

function nftProblems(text: string): string[] {
  const problems: string[] = [];
  // Each `table ... {` block is checked on its own: names do not cross tables.
  for (const table of text.split(/^table /m).slice(1)) {
    const name = table.slice(0, table.indexOf('{')).trim();
    const chains = new Set([...table.matchAll(/^\s*chain (\S+) \{/gm)].map((match) => match[1]));
    const sets = new Set([...table.matchAll(/^\s*(?:set|map) (\S+) \{/gm)].map((match) => match[1]));
    for (const [, target] of table.matchAll(/\b(?:goto|jump) ([^\s,;}]+)/g)) {
      if (!chains.has(target)) problems.push(`table ${name}: jump or goto to undefined chain ${target}`);
    }
    for (const [, reference] of table.matchAll(/@([^\s,;}]+)/g)) {
      if (!sets.has(reference)) problems.push(`table ${name}: reference to undefined set or map @${reference}`);
    }
  }
  return problems;
}

function iptablesProblems(text: string): string[] {
  const problems: string[] = [];
  let table = '';
  let chains = new Set<string>();
  const pending: [string, string][] = [];
  const finish = () => {
    for (const [chain, line] of pending) if (!chains.has(chain)) problems.push(`*${table}: ${line}: chain ${chain} is not declared`);
    pending.length = 0;
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1);
      chains = new Set(BUILTIN_CHAINS);
    } else if (line.startsWith(':')) {
      const chain = line.slice(1).split(' ')[0]!;
      if (chain.length > IPTABLES_MAX_CHAIN) problems.push(`*${table}: chain name ${chain} is longer than ${IPTABLES_MAX_CHAIN} characters`);
      chains.add(chain);
    } else if (line.startsWith('-A ')) {
      pending.push([line.split(' ')[1]!, line]);
      const jump = / -j (FERRY-\S+)/.exec(line);
      if (jump) pending.push([jump[1]!, line]);
    } else if (line === 'COMMIT') {
      finish();
    }
  }
  finish();
  return problems;
}
