// Reads a script as render() prints it back into tables, chains and sets: for the fixed head of a table
// (its base and table-wide chains) and for text handed to the structure check (golden files, hostile
// input). A sync never parses the ports' parts: render hands those over as data.

/** A set or map of a rendered table: its declaration lines and its elements. */
export interface Collection {
  kind: 'set' | 'map';
  declaration: string[];
  elements: string[];
}

/** A chain of a rendered table: its base-chain line (type/hook/priority), if any, and its rules. */
export interface Chain {
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
