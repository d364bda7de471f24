// nftables shell: apply, read back, compare and clean up ferry's tables (`ip ferry`, `ip6 ferry`) with nft.
import { createHash } from 'node:crypto';
import type { Comparison, RenderedRules } from '../backend.js';
import { DataplaneError, runChecked, runInThrowawayNamespace, type Runner } from '../runner.js';
import { buildNftDigest, differingObjects, parseDigests, type ObjectDigests, type TableObject } from './digest.js';
import { reassertScript, type NftInventory } from './incremental.js';
import { nftOf } from './render.js';

const TABLES = ['ip ferry', 'ip6 ferry'] as const;

/**
 * The set in each of ferry's tables whose one element's comment records what ferry wrote last: the
 * digest of the whole rendered rule set and its number of rule lines. Reading it costs a few
 * milliseconds at any size; reading the rules costs the kernel time that grows with the square of
 * their number (see readNftables). A set, because a table's comment cannot be changed once the table
 * exists (the kernel ignores it on update), and nft 1.0.6 does not print it in `list tables`.
 */
export const STAMP_SET = 'rules-digest';

/**
 * Applies the script as one transaction. `nft -f` sends the whole script as one batch that the kernel
 * commits entirely or not at all, so a rejected script leaves the previous tables in place; a separate
 * `nft -c` first would only do the kernel's work twice.
 */
export async function applyNftables(runner: Runner, script: string): Promise<void> {
  await runChecked(runner, 'the kernel rejected the nftables rules; the previous rules stay', 'nft', ['-f', '-'], script);
}

/**
 * applyNftables for a script written while nft reads it: nft reads a file (here a FIFO) as it parses,
 * where it reads `-` (standard input) to its end first. One transaction all the same: nft sends its
 * batch only once it has read and evaluated everything. Where the runner cannot stream, the script
 * goes whole.
 */
export async function applyNftablesStreamed(runner: Runner, script: AsyncIterable<string>): Promise<void> {
  const result = await runner.stream?.('nft', (file) => ['-f', file], script);
  if (!result) {
    let joined = '';
    for await (const piece of script) joined += piece;
    return applyNftables(runner, joined);
  }
  if (result.exitCode !== 0) throw new DataplaneError('nft -f (streamed)', result, 'the kernel rejected the nftables rules; the previous rules stay');
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
  const inventory = await readInventory(runner);
  // The stamp is not part of the rendered tables: re-asserting must not remove it, only renew it.
  for (const table of inventory.values()) table.collections.delete(STAMP_SET);
  await applyNftablesStreamed(runner, (async function* script() {
    yield* reassertScript(inventory, nftOf(rendered));
    yield stampScript(rendered);
  })());
}

/** What a stamp records: the digest of a rendered rule set and its number of lines (rules and set elements). */
export interface Stamp {
  digest: string;
  lines: number;
}

/**
 * The stamp of a rendered rule set, from its parts: each table's head and the sum of its ports'
 * digests, which render keeps up to date port by port, so that a sync after one change does not hash
 * every port again (a port's digest covers its elements, and the table-wide sets follow from the ports).
 */
export function rulesStamp(rendered: RenderedRules): Stamp {
  const hash = createHash('sha256').update('ferry nftables rules 2\0');
  let lines = 0;
  for (const table of nftOf(rendered).tables) {
    const nodePortIPs = table.collections.find((collection) => collection.name === 'nodeport-ips')?.elements ?? [];
    hash.update(`table ${table.family}\0${table.head}\0${nodePortIPs.join(',')}\0${table.totals.digest.toString(16)}\0`);
    lines += table.totals.lines + table.headRules + table.rules.clusterIPs.length + table.hairpin.size + nodePortIPs.length;
  }
  return { digest: hash.digest('hex'), lines };
}

/** The commands that record the stamp of `rendered` in each of its tables; appended to every transaction ferry makes. */
export function stampScript(rendered: RenderedRules): string {
  const { digest, lines } = rulesStamp(rendered);
  return nftOf(rendered).tables.map(({ family }) => [
    `add set ${family} ferry ${STAMP_SET} { type inet_service; comment "what ferry applied: apply and the agent's start compare it, diff reads the rules"; }`,
    `flush set ${family} ferry ${STAMP_SET}`,
    `add element ${family} ferry ${STAMP_SET} { 1 comment "sha256:${digest} lines:${lines}" }`,
    '',
  ].join('\n')).join('');
}

/**
 * ferry's tables in this namespace, each with the stamp it holds (undefined when it has none). The
 * tables are found from their sets (`nft -t -j list sets`, milliseconds): nft 1.0.6 fetches every rule
 * of every table for `list tables`, which at 10,000 Services takes seconds. A ferry table always has
 * sets; one without any holds nothing worth keeping and is replaced like a missing one.
 */
export async function readStamps(runner: Runner): Promise<Map<string, Stamp | undefined>> {
  const listing = JSON.parse(await runChecked(runner, 'listing the sets failed', 'nft', ['-t', '-j', 'list', 'sets'])) as { nftables: { set?: { family: string; table: string; name: string } }[] };
  const found = new Map<string, Stamp | undefined>();
  const stamped = new Set<string>();
  for (const { set } of listing.nftables) {
    // Only ferry's own tables: a table called ferry in another family is someone else's.
    if (set?.table !== 'ferry' || !TABLES.includes(`${set.family} ferry` as (typeof TABLES)[number])) continue;
    found.set(set.family, undefined);
    if (set.name === STAMP_SET) stamped.add(set.family);
  }
  for (const family of stamped) {
    const listed = JSON.parse(await runChecked(runner, 'reading the stamp failed', 'nft', ['-j', 'list', 'set', family, 'ferry', STAMP_SET])) as { nftables: { set?: { elem?: { elem?: { comment?: string } }[] } }[] };
    const comment = listed.nftables.find((entry) => entry.set)?.set?.elem?.[0]?.elem?.comment ?? '';
    const match = /^sha256:([0-9a-f]{64}) lines:(\d+)$/.exec(comment);
    if (match) found.set(family, { digest: match[1]!, lines: Number(match[2]) });
  }
  return found;
}

/** Removes ferry's tables, and nothing else, in one transaction (a missing table is fine). */
export async function cleanupNftables(runner: Runner): Promise<void> {
  const script = TABLES.map((table) => `add table ${table}\ndelete table ${table}\n`).join('');
  await runChecked(runner, 'removing the ferry nftables tables failed', 'nft', ['-f', '-'], script);
}

/**
 * ferry's tables as the kernel of this namespace lists them, canonicalised for comparison. Plain
 * `nft list table`: faster than `-j`, and `-t` saves little, the rules are the cost. The kernel's rule
 * dump walks the table from its first rule again for every netlink message (at most 32 KB), so a
 * listing costs the kernel time growing with the square of the rules; only a comparison (`ferry
 * diff`, tables without a stamp) reads them.
 */
export async function readNftables(runner: Runner): Promise<string> {
  const listings: string[] = [];
  for (const table of TABLES) {
    const result = await runner.run('nft', ['list', 'table', ...table.split(' ')]);
    if (result.exitCode === 0) listings.push(result.stdout);
    else if (!/No such file or directory/.test(result.stderr)) throw new DataplaneError(`nft list table ${table}`, result, 'reading the ferry tables failed');
  }
  return canonicalNftables(listings.join('\n'));
}

/**
 * The kernel's tables compared with the script by listing both whole: the kernel's, and the script's
 * once loaded into a throwaway namespace (at the same time), so that both are in the kernel's own words
 * and a difference is never one of wording.
 */
export async function compareByListing(runner: Runner, script: string): Promise<Comparison> {
  const [current, desired] = await Promise.all([readNftables(runner), listAsKernelWould(runner, script)]);
  return { current, desired };
}

// Beyond this many objects that differ, one listing of each side is cheaper than one per object.
const MOST_OBJECTS_LISTED_ONE_BY_ONE = 8;
const LISTED_ONE_BY_ONE = new Set(['chain', 'set', 'map']);

/**
 * The kernel's tables compared with the script object by object (`ferry diff`): nft-digest reads the
 * digest of every chain and set here and, at the same time, in a throwaway namespace the script was
 * loaded into; only the objects whose digests differ are listed, on both sides. Linear in the rules,
 * where a listing of a table grows with their square. Without the helper (no C compiler, libmnl-dev
 * or libssl-dev), or when a table itself or many objects differ, both sides are listed whole;
 * `onListing` hears why.
 */
export async function compareNftables(runner: Runner, script: string, onListing?: (why: string) => void): Promise<Comparison> {
  let helper: string;
  try {
    helper = await buildNftDigest({ runner });
  } catch (error) {
    onListing?.(`the nft-digest helper could not be built, so both sides are listed whole (${(error as Error).message.split('\n')[0]})`);
    return compareByListing(runner, script);
  }
  const [current, desired] = await Promise.all([readDigests(runner, helper), digestsAsKernelWould(runner, helper, script)]);
  const differing = differingObjects(current, desired);
  if (differing.length === 0) return { current: '', desired: '' };
  if (differing.length > MOST_OBJECTS_LISTED_ONE_BY_ONE || differing.some((object) => !LISTED_ONE_BY_ONE.has(object.kind))) {
    return compareByListing(runner, script);
  }
  const [currentText, desiredText] = await Promise.all([listObjects(runner, differing), listObjectsAsKernelWould(runner, script, differing)]);
  return { current: currentText, desired: desiredText };
}

const DIGESTED_TABLES = TABLES.flatMap((table) => table.split(' '));

/** The digests of ferry's tables in this namespace, the stamp left out (bookkeeping, not rules). */
async function readDigests(runner: Runner, helper: string): Promise<ObjectDigests> {
  return withoutStamp(parseDigests(await runChecked(runner, 'reading the ferry tables failed', helper, DIGESTED_TABLES)));
}

/** The digests the script's tables have once loaded, in a throwaway namespace. */
async function digestsAsKernelWould(runner: Runner, helper: string, script: string): Promise<ObjectDigests> {
  return withoutStamp(parseDigests(await runInThrowawayNamespace(runner, 'the kernel rejected the nftables rules', 'sh', ['-c', 'nft -f - && "$0" "$@"', helper, ...DIGESTED_TABLES], script)));
}

function withoutStamp(digests: ObjectDigests): ObjectDigests {
  for (const [key, { object }] of digests) if (object.kind === 'set' && object.name === STAMP_SET) digests.delete(key);
  return digests;
}

/** The listed objects as this namespace's kernel lists them, canonical; an object it lacks adds nothing. */
async function listObjects(runner: Runner, objects: TableObject[]): Promise<string> {
  const listings: string[] = [];
  for (const { family, kind, name } of objects) {
    const result = await runner.run('nft', ['list', kind, family, 'ferry', name]);
    if (result.exitCode === 0) listings.push(result.stdout);
    else if (!/No such file or directory/.test(result.stderr)) throw new DataplaneError(`nft list ${kind} ${family} ferry ${name}`, result, 'reading the ferry tables failed');
  }
  return canonicalNftables(listings.join('\n'));
}

/** The listed objects as the kernel lists them once the script is loaded, in a throwaway namespace. */
async function listObjectsAsKernelWould(runner: Runner, script: string, objects: TableObject[]): Promise<string> {
  // An object the script does not have is missing there: nft says so on stderr, and it adds nothing.
  const program = 'nft -f - || exit 1; while [ $# -gt 0 ]; do nft list "$1" "$2" ferry "$3" 2>/dev/null; shift 3; done; exit 0';
  return canonicalNftables(await runInThrowawayNamespace(runner, 'the kernel rejected the nftables rules', 'sh', ['-c', program, 'sh', ...objects.flatMap(({ family, kind, name }) => [kind, family, name])], script));
}

/** How the kernel lists the script once loaded: the desired side of a diff, in the kernel's own words. */
export async function listAsKernelWould(runner: Runner, script: string): Promise<string> {
  return canonicalNftables(await runInThrowawayNamespace(runner, 'the kernel rejected the nftables rules', 'sh', ['-c', 'nft -f - && nft list ruleset'], script));
}

// The stamp is ferry's bookkeeping, not a rule: comparisons leave it out.
const STAMP_BLOCK = `set ${STAMP_SET} {`;

/**
 * A listing in a stable form: blocks (sets, maps, chains) sorted by name, set and map elements one per
 * line and sorted, the elements of dynamic sets (affinity state the kernel adds) and ferry's stamp
 * left out. The kernel lists in creation order, which differs between a fresh load and a table updated
 * over time.
 * One pass, each line looked at once: a listing of 50,000 Services has more than a million lines, and
 * one map can hold hundreds of thousands of elements wrapped over many lines.
 */
export function canonicalNftables(listing: string): string {
  // By header: listings of single objects each repeat their table's.
  const tables = new Map<string, { attributes: Set<string>; blocks: { key: string; text: string }[] }>();
  let table: { attributes: Set<string>; blocks: { key: string; text: string }[] } | undefined;
  let block: { key: string; lines: string[]; dynamic: boolean } | undefined;
  let elements: ElementScanner | undefined;
  for (const raw of listing.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (elements) {
      if (!elements.feed(line)) elements = endElements(block!, elements);
    } else if (!table) {
      if (line.endsWith('{')) {
        table = tables.get(line) ?? { attributes: new Set(), blocks: [] };
        tables.set(line, table);
      }
    } else if (!block) {
      if (line === '}') table = undefined;
      else if (line.endsWith('{')) block = { key: line, lines: [`\t${line}`], dynamic: false };
      // The table's own flags and comment (`flags dormant` turns every rule off).
      else table.attributes.add(`\t${line}`);
    } else if (line === '}') {
      block.lines.push('\t}');
      if (block.key !== STAMP_BLOCK) table.blocks.push({ key: block.key, text: block.lines.join('\n') });
      block = undefined;
    } else if (line.startsWith('elements = {')) {
      elements = new ElementScanner();
      if (!elements.feed(line.slice('elements = {'.length))) elements = endElements(block, elements);
    } else {
      if (/^flags .*dynamic/.test(line)) block.dynamic = true;
      block.lines.push(`\t\t${line}`);
    }
  }
  const texts = [...tables].map(([header, { attributes, blocks }]) => {
    blocks.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return [header, ...attributes, ...blocks.map((b) => b.text), '}'].join('\n');
  });
  return texts.sort().join('\n') + (texts.length ? '\n' : '');
}

/** The elements of a set or map, sorted, one per line (none for a dynamic set: that is the kernel's state). */
function endElements(block: { lines: string[]; dynamic: boolean }, scanner: ElementScanner): undefined {
  if (block.dynamic) return undefined;
  block.lines.push('\t\telements = {');
  for (const element of scanner.elements().sort()) block.lines.push(`\t\t\t${element},`);
  block.lines.push('\t\t}');
  return undefined;
}

/**
 * Reads `a, b, c }` over as many lines as the kernel wraps it into: commas and the closing brace count
 * only outside double quotes (an element's comment may hold either).
 */
class ElementScanner {
  private readonly found: string[] = [];
  private current = '';

  /** Takes the next piece of text; false once the closing brace was read. */
  feed(text: string): boolean {
    let inQuotes = false;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 34 /* " */) inQuotes = !inQuotes;
      else if (inQuotes) continue;
      else if (c === 44 /* , */ || c === 125 /* } */) {
        this.add(text.slice(start, i));
        start = i + 1;
        if (c === 125) return false;
      }
    }
    this.current += `${text.slice(start)} `;
    return true;
  }

  elements(): string[] {
    return this.found;
  }

  private add(tail: string): void {
    const element = (this.current + tail).trim();
    this.current = '';
    if (element) this.found.push(element);
  }
}
