// The structure check of rendered nftables rules: every jump and goto names a chain of its table, every
// @reference a set or map of it.
import type { RenderedRules } from '../backend.js';
import { reportProblems } from '../structure-error.js';
import { parseRenderedTables, renderedTables, type TableModel } from './incremental.js';

/** Throws a StructureError naming every problem of an nft script. */
export function checkNftablesText(text: string): void {
  reportProblems('nftables', nftProblems(parseRenderedTables(text)));
}

/** The same for rendered rules, reusing the parse that incremental updates share. */
export function checkNftables(rendered: RenderedRules): void {
  reportProblems('nftables', nftProblems(renderedTables(rendered)));
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
