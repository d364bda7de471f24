// The nftables backend: ferry's tables `ip ferry` and `ip6 ferry`, written by `nft -f` in one
// transaction each time, stamped with the digest of what was written (see shell.ts).
import type { NodeRules } from '../../rules/node-rules.js';
import type { ApplyOptions, ApplyOutcome, Backend, RenderedRules, SyncKind } from '../backend.js';
import { deleteStaleFlows } from '../conntrack.js';
import { lineChanges } from '../line-changes.js';
import { DataplaneError, type Runner } from '../runner.js';
import { readNftFrontends } from './frontends.js';
import { incrementalScript } from './incremental.js';
import { nftOf, renderNftables, renderNftablesStreaming, scriptText } from './render.js';
import * as shell from './shell.js';
import { checkNftables } from './structure.js';

const script = (rendered: RenderedRules) => rendered.texts[0]!.text;

async function apply(runner: Runner, rendered: RenderedRules): Promise<void> {
  checkNftables(rendered);
  await replaceTables(runner, rendered);
}

/** The tables replaced by the rendered ones (after `first`), stamped; streamed, never joined into one string. */
async function replaceTables(runner: Runner, rendered: RenderedRules, first = ''): Promise<void> {
  await shell.applyNftablesStreamed(runner, (async function* text() {
    yield first;
    yield* scriptText(nftOf(rendered));
    yield shell.stampScript(rendered);
  })());
}

/** 'full' when only a replacement can do it (a base chain or a set's declaration changed). */
async function applyChanges(runner: Runner, previous: RenderedRules, next: RenderedRules): Promise<SyncKind> {
  checkNftables(next);
  const update = incrementalScript(nftOf(previous), nftOf(next));
  if (update === undefined) {
    await apply(runner, next);
    return 'full';
  }
  if (update === '') return 'unchanged';
  await shell.applyNftables(runner, update + shell.stampScript(next));
  return 'partial';
}

/**
 * Rewrites everything in one transaction without listing rules (listing 10,000 Services takes the
 * kernel longer than loading them); when the kernel refuses that (a set or base chain of another
 * shape, left by someone else or an older ferry), the tables are replaced instead.
 */
async function reassert(runner: Runner, rendered: RenderedRules): Promise<void> {
  checkNftables(rendered);
  try {
    await shell.reassertNftables(runner, rendered);
  } catch (error) {
    if (!(error instanceof DataplaneError)) throw error;
    await replaceTables(runner, rendered);
  }
}

/**
 * Decides from the stamp every ferry transaction leaves in its tables, before listing anything: the
 * digest of these rules in every table (and no other ferry table) means nothing to do; otherwise one
 * `nft -f` replaces the tables, with `added` the rule lines written and `removed` those the replaced
 * stamp recorded. Listing the rules instead would cost the kernel time growing with the square of their
 * number. Tables without a stamp (an older ferry, or the stamp removed) are compared by listing.
 * `force` writes even when the kernel seems to hold the rules: it repairs what was changed behind a
 * stamp, which `ferry diff` shows. Without any ferry table, the rules are rendered as they are written (loadFresh).
 */
async function applyIfChanged(runner: Runner, rules: NodeRules, options: ApplyOptions): Promise<ApplyOutcome> {
  const found = await shell.readStamps(runner);
  if (found.size === 0) return loadFresh(runner, rules);
  const rendered = renderNftables(rules);
  const families = nftOf(rendered).tables.map((table) => table.family as string);
  // A table of a family no longer rendered goes in the same transaction.
  const stale = [...found.keys()].filter((family) => !families.includes(family)).map((family) => `add table ${family} ferry\ndelete table ${family} ferry\n`).join('');
  // Checked only where it is written or compared: rules the stamp shows in the kernel were checked when they were written.
  const replace = () => {
    checkNftables(rendered);
    return replaceTables(runner, rendered, stale);
  };
  const stamps = [...found.values()];
  if (stamps.every((held) => held !== undefined)) {
    if (!options.force && stampMatches(found, rendered)) return { changed: false, added: 0, removed: 0, rendered };
    await replace();
    return { changed: true, added: shell.rulesStamp(rendered).lines, removed: Math.max(0, ...stamps.map((held) => held!.lines)), rendered };
  }
  checkNftables(rendered);
  const { current, desired } = await shell.compareByListing(runner, script(rendered));
  if (current === desired && stale === '' && !options.force) {
    // The rules match: recording the stamp lets the next comparison skip the listing.
    await shell.applyNftables(runner, shell.stampScript(rendered));
    return { changed: false, added: 0, removed: 0, rendered };
  }
  await replace();
  return { changed: true, ...lineChanges(current, desired), rendered };
}

/**
 * A first load, into a kernel without ferry's tables: the script goes to nft while it is rendered, so
 * that nft parses its start while ferry renders the rest (at 10,000 Services nft parses for a second
 * before the kernel sees anything). It is structure-checked before it ends; a problem, or ferry
 * stopping, kills nft before its input ends, and nft commits nothing before the end. Even a script cut
 * short by ferry being killed could only leave whole tables (each is one block, a cut inside it does
 * not parse) without a stamp: nothing was there to replace.
 */
async function loadFresh(runner: Runner, rules: NodeRules): Promise<ApplyOutcome> {
  const stream = renderNftablesStreaming(rules);
  async function* script(): AsyncGenerator<string> {
    yield* stream.pieces;
    checkNftables(stream.rendered());
    yield shell.stampScript(stream.rendered());
  }
  await shell.applyNftablesStreamed(runner, script());
  const rendered = stream.rendered();
  return { changed: true, added: shell.rulesStamp(rendered).lines, removed: 0, rendered };
}

/** Every rendered table, and no other ferry table, holds the stamp of these rules. */
function stampMatches(found: Map<string, shell.Stamp | undefined>, rendered: RenderedRules): boolean {
  const families = nftOf(rendered).tables.map((table) => table.family as string);
  const { digest } = shell.rulesStamp(rendered);
  return found.size === families.length && families.every((family) => found.get(family)?.digest === digest);
}

export const nftablesBackend: Backend = {
  render: (rules, _options, update) => renderNftables(rules, update),
  check: checkNftables,
  apply,
  applyChanges,
  reassert,
  applyIfChanged,
  stampedAs: async (runner, rendered) => stampMatches(await shell.readStamps(runner), rendered),
  compare: async (runner, rendered) => {
    checkNftables(rendered);
    return shell.compareByListing(runner, script(rendered));
  },
  diff: async (runner, rendered, onListing) => {
    checkNftables(rendered);
    return shell.compareNftables(runner, script(rendered), onListing);
  },
  cleanup: shell.cleanupNftables,
  clearStaleFlows: (runner, flows) => deleteStaleFlows(runner, flows),
  // Every connection it balances is a conntrack NAT entry, which the balancer reads itself.
  balancedSockets: async () => [],
  // Its rules match on addresses, not on interfaces: nothing appears that they do not cover.
  refresh: async () => [],
  frontends: (runner) => readNftFrontends(runner),
  ruleCounts: (rendered) => nftOf(rendered).tables.map((table) => ({
    family: table.rules.family,
    rules: table.totals.rules + table.headRules,
  })),
};
