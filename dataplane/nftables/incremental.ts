// Incremental nftables updates: from the previous rendering to the next, only the chains, sets and
// elements of the ports that changed, as one transaction that leaves everything else (affinity state
// too) alone. A rendering made from the previous one names its changed ports, so an update costs what
// changed; any other pair of renderings is compared port by port, by digest.
import { compareAddresses } from '../../controlplane/model/ip.js';
import { lowerBound, splitPortKey } from '../../rules/port-changes.js';
import { partOf } from '../port-parts.js';
import { templates } from '../templates.js';
import { PORT_COLLECTIONS, tableText, type NftPortPart, type NftRendering, type NftTableRendering, type NftVerdictElement } from './render.js';

/** A port in two renderings: the part it had and the part it has (undefined where it is not). */
interface PortPair {
  before: NftPortPart | undefined;
  after: NftPortPart | undefined;
}

/** The part of the port with this id in a table (ports follow servicePorts, sorted by id). */
export function portPart(table: NftTableRendering, id: string): NftPortPart | undefined {
  return partOf(table.rules, table.ports, id);
}

/**
 * The ids of the ports of a family that may differ from the rendering `next` was made from (`previous`,
 * when given, must be that one), or undefined when that is not known: then every port may differ.
 */
export function changedIds(next: NftRendering, family: 'IPv4' | 'IPv6', previous?: NftRendering): string[] | undefined {
  if (!next.update || (previous && next.update.from !== previous.id)) return undefined;
  return [...next.update.changed].map(splitPortKey).filter((key) => key.family === family).map((key) => key.id);
}

/** The ports of these ids whose parts differ between the tables (by digest). */
function portPairs(ids: string[], before: NftTableRendering, after: NftTableRendering): PortPair[] {
  return ids.map((id) => ({ before: portPart(before, id), after: portPart(after, id) }))
    .filter((pair) => pair.before?.digest !== pair.after?.digest);
}

/**
 * The nft script that turns the rules of `previous` into those of `next`, or undefined when only a full
 * replacement can do it (a table's head changed: its base chains, sets or table-wide rules, or a table
 * came or went). Order inside the one transaction: the changed ports' chains flushed, their sets
 * declared, their chains written again (as a table block, as render prints them), then elements, and
 * last the removal of what nothing refers to any more.
 */
export function incrementalScript(previous: NftRendering, next: NftRendering): string | undefined {
  if (previous.tables.length !== next.tables.length) return undefined;
  const flush: string[] = [];
  const declare: string[] = [];
  const blocks: string[] = [];
  const deleteElements: string[] = [];
  const addElements: string[] = [];
  const drop: string[] = [];
  for (const [index, after] of next.tables.entries()) {
    const before = previous.tables[index]!;
    if (before.family !== after.family || before.head !== after.head) return undefined;
    const table = `${after.family} ferry`;
    // Set elements are their keys; a verdict map's are written with their verdicts, deleted by their keys.
    const elements = (name: string, gone: readonly (string | NftVerdictElement)[], added: readonly (string | NftVerdictElement)[]) => {
      if (gone.length > 0) deleteElements.push(`delete element ${table} ${name} { ${gone.map((element) => (typeof element === 'string' ? element : element.key)).join(', ')} }`);
      if (added.length > 0) addElements.push(`add element ${table} ${name} { ${added.map(elementText).join(', ')} }`);
    };
    // Only the changed ports when `next` was made from `previous`; else every port of either, compared by digest.
    const changed = changedIds(next, after.rules.family, previous);
    const pairs = portPairs(changed ?? [...new Set([...before.rules.servicePorts, ...after.rules.servicePorts].map((port) => port.id))], before, after);
    const chains: string[] = [];
    for (const { before: old, after: part } of pairs) {
      for (const name of old?.chainNames ?? []) flush.push(`flush chain ${table} ${name}`);
      const oldSets = new Map(old?.affinitySets.map((set) => [set.name, set.seconds]) ?? []);
      const newSets = new Map(part?.affinitySets.map((set) => [set.name, set.seconds]) ?? []);
      for (const [name, seconds] of newSets) {
        if (oldSets.get(name) === seconds) continue;
        // A timeout cannot be changed in place: the set goes (its rules were flushed) and comes back.
        if (oldSets.has(name)) flush.push(`delete set ${table} ${name}`);
        declare.push(`add set ${table} ${name} { type ${after.family === 'ip' ? 'ipv4_addr' : 'ipv6_addr'}; flags dynamic,timeout; timeout ${seconds}s; }`);
      }
      if (part) chains.push(part.chains);
      for (const name of PORT_COLLECTIONS) {
        const [was, is] = [old?.verdicts.get(name) ?? [], part?.verdicts.get(name) ?? []];
        const [wasText, isText] = [new Set(was.map(elementText)), new Set(is.map(elementText))];
        elements(name, was.filter((element) => !isText.has(elementText(element))), is.filter((element) => !wasText.has(elementText(element))));
      }
      const kept = new Set(part?.chainNames);
      for (const name of old?.chainNames ?? []) if (!kept.has(name)) drop.push(`delete chain ${table} ${name}`);
      for (const name of oldSets.keys()) if (!newSets.has(name)) drop.push(`delete set ${table} ${name}`);
    }
    if (chains.length > 0) blocks.push(`table ${table} {\n${chains.join('')}}`);
    // The table's own sets: hairpin-endpoints counts the ports' pairs, cluster-ips follows the Services.
    const touched = pairs.flatMap(({ before: old, after: part }) => [old, part]);
    const pairsOf = (part: NftPortPart | undefined) => part?.hairpin ?? [];
    const hairpin = changed ? [...new Set(touched.flatMap(pairsOf))] : [...new Set([...before.hairpin.keys(), ...after.hairpin.keys()])];
    elements('hairpin-endpoints', hairpin.filter((pair) => before.hairpin.has(pair) && !after.hairpin.has(pair)), hairpin.filter((pair) => !before.hairpin.has(pair) && after.hairpin.has(pair)));
    const [ipsBefore, ipsAfter] = [before.rules.clusterIPs, after.rules.clusterIPs];
    const clusterIPs = changed
      ? [...new Set(touched.flatMap((part) => (part ? [part.clusterIP] : [])))]
      : [...new Set([...ipsBefore, ...ipsAfter])];
    elements('cluster-ips', clusterIPs.filter((ip) => holds(ipsBefore, ip) && !holds(ipsAfter, ip)), clusterIPs.filter((ip) => !holds(ipsBefore, ip) && holds(ipsAfter, ip)));
    const nodePortIPs = (rendering: NftTableRendering) => rendering.collections.find((collection) => collection.name === 'nodeport-ips')?.elements ?? [];
    const [npBefore, npAfter] = [nodePortIPs(before), nodePortIPs(after)];
    elements('nodeport-ips', npBefore.filter((ip) => !npAfter.includes(ip)), npAfter.filter((ip) => !npBefore.includes(ip)));
  }
  const commands = [...flush, ...declare, ...blocks, ...deleteElements, ...addElements, ...drop];
  return commands.length > 0 ? `${commands.join('\n')}\n` : '';
}

/** Whether a sorted list of addresses holds one (binary search). */
function holds(addresses: readonly string[], ip: string): boolean {
  return addresses[lowerBound(addresses, ip, compareAddresses)] === ip;
}

/** A set element, or a verdict map element as its table prints it (`add element` takes the same). */
function elementText(element: string | NftVerdictElement): string {
  return typeof element === 'string' ? element : templates.nftVerdictElement(element);
}

/** The names of what the kernel holds in ferry's tables, per family (`nft -t -j list chains/sets/maps`). */
export type NftInventory = Map<string, { chains: Set<string>; collections: Map<string, 'set' | 'map'> }>;

/**
 * A full resync that reads back names only, not rules: every chain and plain set the kernel holds in
 * ferry's tables emptied, the tables written again whole as blocks (which add what is missing and fill
 * what was emptied), and whatever else the kernel holds there removed. One transaction; dynamic sets
 * (session affinity) keep their elements. Listing the rules of a large table costs the kernel far
 * more than loading them (see docs/performance.md). In pieces, as the tables print: nft reads them as
 * they come, and the script is never one string (at 10,000 Services, 14 MB held twice while it is joined).
 */
export function* reassertScript(inventory: NftInventory, next: NftRendering): Generator<string> {
  const remove: string[] = [];
  for (const rendering of next.tables) {
    const table = `${rendering.family} ferry`;
    const have = inventory.get(rendering.family) ?? { chains: new Set<string>(), collections: new Map<string, 'set' | 'map'>() };
    const chains = new Set([...rendering.headChains.map((chain) => chain.name), ...rendering.ports.flatMap((part) => part.chainNames)]);
    const dynamic = new Set(rendering.ports.flatMap((part) => part.affinitySets.map((set) => set.name)));
    const collections = new Set([...rendering.collections.map((collection) => collection.name), ...dynamic]);
    // Every chain the kernel holds is emptied first, so that nothing refers to what is removed last.
    const flush: string[] = [];
    for (const name of have.chains) {
      flush.push(`flush chain ${table} ${name}\n`);
      if (!chains.has(name)) remove.push(`delete chain ${table} ${name}\n`);
    }
    for (const [name, kind] of have.collections) {
      if (!collections.has(name)) remove.push(`delete ${kind} ${table} ${name}\n`);
      else if (!dynamic.has(name)) flush.push(`flush ${kind} ${table} ${name}\n`);
    }
    yield flush.join('');
  }
  for (const rendering of next.tables) {
    yield* tableText(rendering, false);
    yield '\n';
  }
  yield remove.join('');
}
