// Structure checks on rendered text: catch a dangling jump or an over-long name before the kernel sees it.
import { parseRenderedTables, renderedTables, type TableModel } from './nft-incremental.js';
import type { Backend, RenderedRules } from './render.js';

/** The rendered rules are inconsistent: a bug in ferry, never the user's input. */
export class StructureError extends Error {}

// iptables chain names: XT_EXTENSION_MAXNAMELEN is 29 bytes including the terminating NUL.
const IPTABLES_MAX_CHAIN = 28;
const BUILTIN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/** Throws a StructureError naming every problem found. */
export function checkStructure(text: string, backend: Backend): void {
  report(backend, backend === 'nftables' ? nftProblems(parseRenderedTables(text)) : iptablesProblems(text));
}

/** checkStructure for everything rendered; nftables reuses the parse that incremental updates share. */
export function checkRendered(rendered: RenderedRules): void {
  if (rendered.backend === 'nftables') report('nftables', nftProblems(renderedTables(rendered)));
  else for (const part of rendered.texts) checkStructure(part.text, 'iptables');
}

function report(backend: Backend, problems: string[]): void {
  if (problems.length > 0) throw new StructureError(`rendered ${backend} rules are inconsistent:\n  ${problems.join('\n  ')}`);
}

/** What a rule or map element refers to: chains it jumps to, sets and maps it names. */
interface References {
  chains: string[];
  sets: string[];
}

// A Service port that did not change keeps its parsed rules (the same array), so its references are found once.
const referencesMemo = new WeakMap<string[], References>();

function referencesOf(lines: string[]): References {
  let references = referencesMemo.get(lines);
  if (!references) {
    references = { chains: [], sets: [] };
    for (const line of lines) {
      // Most lines (set elements above all) refer to nothing: skip them without running the patterns.
      if (!line.includes('goto') && !line.includes('jump') && !line.includes('@')) continue;
      for (const [, target] of line.matchAll(/\b(?:goto|jump) ([^\s,;}]+)/g)) references.chains.push(target!);
      for (const [, name] of line.matchAll(/@([^\s,;}]+)/g)) references.sets.push(name!);
    }
    referencesMemo.set(lines, references);
  }
  return references;
}

function nftProblems(tables: Map<string, TableModel>): string[] {
  const problems: string[] = [];
  // Each table is checked on its own: names do not cross tables.
  for (const [family, table] of tables) {
    // Elements of a plain set are values; only a verdict map's elements can name a chain.
    const maps = [...table.collections.values()].filter((collection) => collection.kind === 'map');
    const lists = [...[...table.chains.values()].map((chain) => chain.rules), ...maps.map((collection) => collection.elements)];
    for (const lines of lists) {
      const { chains, sets } = referencesOf(lines);
      for (const target of chains) if (!table.chains.has(target)) problems.push(`table ${family} ferry: jump or goto to undefined chain ${target}`);
      for (const name of sets) if (!table.collections.has(name)) problems.push(`table ${family} ferry: reference to undefined set or map @${name}`);
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
