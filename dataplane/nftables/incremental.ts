// Incremental nftables updates: from the previous rendered script to the next, only the chains, sets
// and map elements that changed, as one transaction that leaves everything else (affinity state too) alone.
import type { RenderedRules } from '../backend.js';

/** A set or map of a rendered table: its declaration lines and its elements. */
interface Collection {
  kind: 'set' | 'map';
  declaration: string[];
  elements: string[];
}

/** A chain of a rendered table: its base-chain line (type/hook/priority), if any, and its rules. */
interface Chain {
  base: string | undefined;
  rules: string[];
}

/** One `table FAMILY ferry { ... }` of a rendered script. */
export interface TableModel {
  family: string;
  collections: Map<string, Collection>;
  chains: Map<string, Chain>;
}

/** Reads the tables of a script that render() produced (not arbitrary nft syntax). */
export function parseRenderedTables(script: string): Map<string, TableModel> {
  const tables = new Map<string, TableModel>();
  let table: TableModel | undefined;
  let collection: Collection | undefined;
  let chain: Chain | undefined;
  let inElements = false;
  for (const raw of script.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const tableStart = /^table (\S+) ferry \{$/.exec(line);
    const block = /^(set|map|chain) (\S+) \{$/.exec(line);
    if (tableStart) {
      table = { family: tableStart[1]!, collections: new Map(), chains: new Map() };
      tables.set(table.family, table);
    } else if (table && block) {
      if (block[1] === 'chain') {
        chain = { base: undefined, rules: [] };
        table.chains.set(block[2]!, chain);
      } else {
        collection = { kind: block[1] as 'set' | 'map', declaration: [], elements: [] };
        table.collections.set(block[2]!, collection);
      }
    } else if (line === '}') {
      if (inElements) inElements = false;
      else if (chain || collection) chain = collection = undefined;
      else table = undefined;
    } else if (collection) {
      if (line === 'elements = {') inElements = true;
      else if (inElements) collection.elements.push(line.replace(/,$/, ''));
      // One line can hold hundreds of thousands of elements: too many to spread into push()'s arguments.
      else if (line.startsWith('elements = {')) collection.elements = collection.elements.concat(line.slice(12, line.lastIndexOf('}')).split(',').map((e) => e.trim()).filter(Boolean));
      else collection.declaration.push(line);
    } else if (chain) {
      if (/^type \S+ hook /.test(line)) chain.base = line;
      else chain.rules.push(line);
    }
  }
  return tables;
}

const parsed = new WeakMap<RenderedRules, Map<string, TableModel>>();
// The chains of each Service port text seen in the last parse: a port that did not change renders the
// same text, so a sync parses only the ports that changed.
let portChains = new Map<string, Map<string, Chain>>();

/** The tables of a rendered nftables rule set, parsed once per rendering and per distinct port text. */
export function renderedTables(rendered: RenderedRules): Map<string, TableModel> {
  let tables = parsed.get(rendered);
  if (tables) return tables;
  if (!rendered.nftTables) {
    tables = parseRenderedTables(rendered.texts[0]!.text);
  } else {
    tables = new Map();
    const seen = new Map<string, Map<string, Chain>>();
    for (const part of rendered.nftTables) {
      const table = parseRenderedTables(part.head).get(part.family)!;
      for (const [name, elements] of part.elements) table.collections.get(name)!.elements = elements;
      for (const text of part.servicePortChains) {
        const chains = seen.get(text) ?? portChains.get(text) ?? parseRenderedTables(`table port ferry {\n${text}}\n`).get('port')!.chains;
        seen.set(text, chains);
        for (const [name, chain] of chains) table.chains.set(name, chain);
      }
      tables.set(part.family, table);
    }
    portChains = seen;
  }
  parsed.set(rendered, tables);
  return tables;
}

/**
 * The nft script that turns the rules of `previous` into those of `next`, or undefined when only a full
 * replacement can do it (a base chain or a set's declaration changed, or a table appeared).
 * Order inside the one transaction: new chains and sets first (so elements and rules can refer to
 * them), then changed rules and elements, and last the removal of what nothing refers to any more.
 */
export function incrementalScript(previous: RenderedRules, next: RenderedRules): string | undefined {
  const before = renderedTables(previous);
  const after = renderedTables(next);
  if ([...after.keys()].some((family) => !before.has(family)) || [...before.keys()].some((family) => !after.has(family))) return undefined;
  const create: string[] = [];
  const update: string[] = [];
  const remove: string[] = [];
  const drop: string[] = [];
  for (const [family, want] of after) {
    const have = before.get(family)!;
    const table = `${family} ferry`;
    for (const [name, collection] of want.collections) {
      const old = have.collections.get(name);
      if (old && (old.kind !== collection.kind || old.declaration.join('\n') !== collection.declaration.join('\n'))) return undefined;
      if (!old) create.push(`add ${collection.kind} ${table} ${name} { ${collection.declaration.join('; ')}; }`);
      if (old && sameItems(old.elements, collection.elements)) continue;
      const oldElements = elementSet(old?.elements ?? []);
      const newElements = elementSet(collection.elements);
      const gone = [...oldElements].filter((element) => !newElements.has(element));
      const added = collection.elements.filter((element) => !oldElements.has(element));
      if (gone.length > 0) update.push(`delete element ${table} ${name} { ${gone.map(elementKey).join(', ')} }`);
      if (added.length > 0) update.push(`add element ${table} ${name} { ${added.join(', ')} }`);
    }
    for (const [name, chain] of want.chains) {
      const old = have.chains.get(name);
      if (old && old.base !== chain.base) return undefined;
      if (!old && chain.base) return undefined;
      if (!old) create.push(`add chain ${table} ${name}`);
      if (old && sameItems(old.rules, chain.rules)) continue;
      if (old) update.push(`flush chain ${table} ${name}`);
      update.push(...chain.rules.map((rule) => `add rule ${table} ${name} ${rule}`));
    }
    for (const name of have.chains.keys()) {
      if (want.chains.has(name)) continue;
      remove.push(`flush chain ${table} ${name}`);
      drop.push(`delete chain ${table} ${name}`);
    }
    for (const [name, collection] of have.collections) {
      if (!want.collections.has(name)) drop.push(`delete ${collection.kind} ${table} ${name}`);
    }
  }
  const commands = [...create, ...update, ...remove, ...drop];
  return commands.length > 0 ? `${commands.join('\n')}\n` : '';
}

// The elements of the last rendering are the previous ones of the next sync: their set is built once.
const elementSets = new WeakMap<string[], Set<string>>();

function elementSet(elements: string[]): Set<string> {
  let set = elementSets.get(elements);
  if (!set) elementSets.set(elements, (set = new Set(elements)));
  return set;
}

function sameItems(a: string[], b: string[]): boolean {
  return a === b || (a.length === b.length && a.every((item, index) => item === b[index]));
}

/** The key of a map element (`key : verdict`) or a set element, as `delete element` wants it. */
function elementKey(element: string): string {
  const colon = element.lastIndexOf(' : ');
  return colon < 0 ? element : element.slice(0, colon);
}

/** The names of what the kernel holds in ferry's tables, per family (`nft -t -j list chains/sets/maps`). */
export type NftInventory = Map<string, { chains: Set<string>; collections: Map<string, 'set' | 'map'> }>;

/**
 * A full resync that reads back names only, not rules: every set, map and chain of `next` declared
 * again, maps and plain sets refilled, every chain rewritten, and whatever else the kernel holds in
 * ferry's tables removed. One transaction; dynamic sets (session affinity) keep their elements. Listing
 * the rules of a large table costs the kernel far more than loading them (see docs/performance.md).
 */
export function reassertScript(inventory: NftInventory, next: RenderedRules): string {
  const declare: string[] = [];
  const flush: string[] = [];
  const fill: string[] = [];
  const remove: string[] = [];
  for (const [family, want] of renderedTables(next)) {
    const table = `${family} ferry`;
    const have = inventory.get(family) ?? { chains: new Set<string>(), collections: new Map<string, 'set' | 'map'>() };
    declare.push(`add table ${table}`);
    for (const [name, collection] of want.collections) {
      declare.push(`add ${collection.kind} ${table} ${name} { ${collection.declaration.join('; ')}; }`);
      if (collection.declaration.some((line) => /^flags .*dynamic/.test(line))) continue;
      if (have.collections.has(name)) flush.push(`flush ${collection.kind} ${table} ${name}`);
      if (collection.elements.length > 0) fill.push(`add element ${table} ${name} { ${collection.elements.join(', ')} }`);
    }
    for (const [name, chain] of want.chains) {
      declare.push(chain.base ? `add chain ${table} ${name} { ${chain.base} }` : `add chain ${table} ${name}`);
      fill.push(...chain.rules.map((rule) => `add rule ${table} ${name} ${rule}`));
    }
    // Every chain the kernel holds is emptied first, so that nothing refers to what is removed last.
    for (const name of have.chains) {
      flush.push(`flush chain ${table} ${name}`);
      if (!want.chains.has(name)) remove.push(`delete chain ${table} ${name}`);
    }
    for (const [name, kind] of have.collections) if (!want.collections.has(name)) remove.push(`delete ${kind} ${table} ${name}`);
  }
  return `${[...declare, ...flush, ...fill, ...remove].join('\n')}\n`;
}
