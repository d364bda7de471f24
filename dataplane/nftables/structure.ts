// The structure check of rendered nftables rules, on the objects render made them from: every chain a
// rule or a verdict element goes or jumps to is a chain of its table, every set or map a rule looks up
// is one of its table's. A rendering made from the previous one is checked in the ports that changed
// (the rest was checked when the rendering it was made from was) and in its head.
import type { RenderedRules } from '../backend.js';
import { reportProblems } from '../structure-error.js';
import { changedIds, portPart } from './incremental.js';
import { nftOf, type NftPortPart, type NftTableRendering } from './render.js';

/** Throws a StructureError naming every reference to a chain or set that its table does not declare. */
export function checkNftables(rendered: RenderedRules): void {
  const nft = nftOf(rendered);
  const problems: string[] = [];
  for (const table of nft.tables) {
    const chains = new Set(table.headChains.map((chain) => chain.name));
    const sets = new Set(table.collections.map((collection) => collection.name));
    const head: Declared = { chain: (name) => chains.has(name), set: (name) => sets.has(name) };
    const ids = changedIds(nft, table.rules.family);
    const parts = ids ? ids.flatMap((id) => portPart(table, id) ?? []) : table.ports;
    problems.push(...unresolved(table, table.headReferences, head));
    for (const part of parts) problems.push(...portProblems(table, head, part));
  }
  reportProblems('nftables', problems);
}

/** Whether a table declares a chain, and a set or map, of a name. */
interface Declared {
  chain(name: string): boolean;
  set(name: string): boolean;
}

/** A port may refer to its own chains and sets and to the head's, nothing else. */
function portProblems(table: NftTableRendering, head: Declared, part: NftPortPart): string[] {
  const chains = new Set(part.chainNames);
  const sets = new Set(part.affinitySets.map((set) => set.name));
  return unresolved(table, part.references, { chain: (name) => chains.has(name) || head.chain(name), set: (name) => sets.has(name) || head.set(name) });
}

function unresolved(table: NftTableRendering, references: { chains: readonly string[]; sets: readonly string[] }, declared: Declared): string[] {
  return [
    ...references.chains.filter((name) => !declared.chain(name)).map((name) => `table ${table.family} ferry: jump or goto to undefined chain ${name}`),
    ...references.sets.filter((name) => !declared.set(name)).map((name) => `table ${table.family} ferry: reference to undefined set or map @${name}`),
  ];
}
