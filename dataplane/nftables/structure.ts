// The structure check of rendered nftables rules: every jump and goto names a chain of its table, every
// @reference a set or map of it. A rendering made from the previous one is checked in the ports that
// changed (the rest was checked when the rendering it was made from was) and in its head.
import type { RenderedRules } from '../backend.js';
import { reportProblems } from '../structure-error.js';
import { changedIds, portPart } from './incremental.js';
import { parseRenderedTables, type TableModel } from './parse.js';
import { nftOf, type NftPortPart } from './render.js';

/** Throws a StructureError naming every problem of an nft script. */
export function checkNftablesText(text: string): void {
  const problems: string[] = [];
  for (const [family, table] of parseRenderedTables(text)) {
    // Elements of a plain set are values; only a verdict map's elements can name a chain.
    const maps = [...table.collections.values()].filter((collection) => collection.kind === 'map');
    const lines = [...[...table.chains.values()].flatMap((chain) => chain.rules), ...maps.flatMap((collection) => collection.elements)];
    problems.push(...unresolved(family, lines, (name) => table.chains.has(name), (name) => table.collections.has(name)));
  }
  reportProblems('nftables', problems);
}

/** The same for a rendering: its heads, and its ports' chains and elements against their table. */
export function checkNftables(rendered: RenderedRules): void {
  const nft = nftOf(rendered);
  const problems: string[] = [];
  for (const table of nft.tables) {
    const head = table.headTable;
    const ids = changedIds(nft, table.rules.family);
    const parts = ids ? ids.flatMap((id) => portPart(table, id) ?? []) : table.ports;
    problems.push(...headProblems(table.family, head));
    for (const part of parts) problems.push(...portProblems(table.family, head, part));
  }
  reportProblems('nftables', problems);
}

function headProblems(family: string, head: TableModel): string[] {
  const lines = [...head.chains.values()].flatMap((chain) => chain.rules);
  return unresolved(family, lines, (name) => head.chains.has(name), (name) => head.collections.has(name));
}

/** A port may refer to its own chains and sets and to the head's, nothing else. */
function portProblems(family: string, head: TableModel, part: NftPortPart): string[] {
  const chains = new Set(part.chainNames);
  const sets = new Set(part.affinitySets.map((set) => set.name));
  const verdicts = [...part.elements.values()].flat().filter((element) => element.includes(' : '));
  return unresolved(family, [part.chains, ...verdicts], (name) => chains.has(name) || head.chains.has(name), (name) => sets.has(name) || head.collections.has(name));
}

function unresolved(family: string, lines: string[], isChain: (name: string) => boolean, isSet: (name: string) => boolean): string[] {
  const problems: string[] = [];
  for (const line of lines) {
    // Most lines (set elements above all) refer to nothing: skip them without running the patterns.
    if (!line.includes('goto') && !line.includes('jump') && !line.includes('@')) continue;
    for (const [, target] of line.matchAll(/\b(?:goto|jump) ([^\s,;}]+)/g)) if (!isChain(target!)) problems.push(`table ${family} ferry: jump or goto to undefined chain ${target}`);
    for (const [, name] of line.matchAll(/@([^\s,;}]+)/g)) if (!isSet(name!)) problems.push(`table ${family} ferry: reference to undefined set or map @${name}`);
  }
  return problems;
}
