// nftables shell: check, apply, read back and clean up ferry's tables (`ip ferry`, `ip6 ferry`) with nft.
import { reassertScript, type NftInventory } from './nft-incremental.js';
import type { RenderedRules } from './render.js';
import { DataplaneError, inThrowawayNamespace, runChecked, type Runner } from './runner.js';

const TABLES = ['ip ferry', 'ip6 ferry'] as const;

/**
 * Applies the script as one transaction. `nft -f` sends the whole script as one batch that the kernel
 * commits entirely or not at all, so a rejected script leaves the previous tables in place; a separate
 * `nft -c` first would only do the kernel's work twice.
 */
export async function applyNftables(runner: Runner, script: string): Promise<void> {
  await runChecked(runner, 'the kernel rejected the nftables rules; the previous rules stay', 'nft', ['-f', '-'], script);
}

/** The names of the chains, sets and maps in ferry's tables: cheap to list, unlike their rules. */
export async function readInventory(runner: Runner): Promise<NftInventory> {
  const inventory: NftInventory = new Map();
  for (const what of ['chains', 'sets', 'maps'] as const) {
    const listing = JSON.parse(await runChecked(runner, 'listing the ferry tables failed', 'nft', ['-t', '-j', 'list', what])) as { nftables: Record<string, { family: string; table: string; name: string }>[] };
    for (const entry of listing.nftables) {
      const [kind, object] = Object.entries(entry)[0]!;
      if (kind === 'metainfo' || object.table !== 'ferry') continue;
      const table = inventory.get(object.family) ?? { chains: new Set<string>(), collections: new Map<string, 'set' | 'map'>() };
      inventory.set(object.family, table);
      if (kind === 'chain') table.chains.add(object.name);
      else table.collections.set(object.name, kind as 'set' | 'map');
    }
  }
  return inventory;
}

/** Makes the kernel hold exactly the rendered rules again, without listing its rules (see reassertScript). */
export async function reassertNftables(runner: Runner, rendered: RenderedRules): Promise<void> {
  await applyNftables(runner, reassertScript(await readInventory(runner), rendered));
}

/** Removes ferry's tables, and nothing else, in one transaction (a missing table is fine). */
export async function cleanupNftables(runner: Runner): Promise<void> {
  const script = TABLES.map((table) => `add table ${table}\ndelete table ${table}\n`).join('');
  await runChecked(runner, 'removing the ferry nftables tables failed', 'nft', ['-f', '-'], script);
}

/** ferry's tables as the kernel of this namespace lists them, canonicalised for comparison. */
export async function readNftables(runner: Runner): Promise<string> {
  const listings: string[] = [];
  for (const table of TABLES) {
    const result = await runner.run('nft', ['list', 'table', ...table.split(' ')]);
    if (result.exitCode === 0) listings.push(result.stdout);
    else if (!/No such file or directory/.test(result.stderr)) throw new DataplaneError(`nft list table ${table}`, result, 'reading the ferry tables failed');
  }
  return canonicalNftables(listings.join('\n'));
}

/** How the kernel lists the script once loaded: the desired side of a diff, in the kernel's own words. */
export async function listAsKernelWould(runner: Runner, script: string): Promise<string> {
  const [command, args] = inThrowawayNamespace('sh', ['-c', 'nft -f - && nft list ruleset']);
  return canonicalNftables(await runChecked(runner, 'the kernel rejected the nftables rules', command, args, script));
}

/**
 * A listing in a stable form: blocks (sets, maps, chains) sorted by name, set and map elements one per
 * line and sorted, and the elements of dynamic sets (affinity state the kernel adds) left out. The
 * kernel lists in creation order, which differs between a fresh load and a table updated over time.
 */
export function canonicalNftables(listing: string): string {
  const tables: string[] = [];
  for (const table of splitBlocks(listing, 0)) {
    const lines = table.split('\n');
    const header = lines[0]!.trim();
    const blocks = splitBlocks(lines.slice(1, -1).join('\n'), 1).map(canonicalBlock).sort(compareBlocks);
    tables.push([header, ...blocks, '}'].join('\n'));
  }
  return tables.sort().join('\n') + (tables.length ? '\n' : '');
}

/** Top-level `{ ... }` blocks of a listing at a given tab depth, each as its text. */
function splitBlocks(listing: string, depth: number): string[] {
  const blocks: string[] = [];
  let current: string[] = [];
  const indent = '\t'.repeat(depth);
  for (const line of listing.split('\n')) {
    if (line.trim() === '') continue;
    current.push(line);
    if (line === `${indent}}`) {
      blocks.push(current.join('\n'));
      current = [];
    }
  }
  return blocks;
}

function canonicalBlock(block: string): string {
  const lines = block.split('\n').map((line) => line.trim());
  const isDynamic = lines.some((line) => /^flags .*dynamic/.test(line));
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.startsWith('elements = {')) {
      out.push(line);
      continue;
    }
    let text = line;
    while (!text.trimEnd().endsWith('}') && i + 1 < lines.length) text += ` ${lines[++i]}`;
    if (isDynamic) continue;
    const elements = text.slice(text.indexOf('{') + 1, text.lastIndexOf('}')).split(',').map((element) => element.trim()).filter(Boolean);
    out.push('elements = {', ...elements.sort().map((element) => `\t${element},`), '}');
  }
  return out.map((line, index) => (index === 0 || index === out.length - 1 ? `\t${line}` : `\t\t${line}`)).join('\n');
}

function compareBlocks(a: string, b: string): number {
  const key = (block: string) => block.split('\n')[0]!.trim();
  return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
}
