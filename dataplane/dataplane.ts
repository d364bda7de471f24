// The dataplane facade: apply, diff and clean up rendered rules with whichever backend they were rendered for.
import { createTwoFilesPatch, diffLines } from 'diff';
import * as iptables from './iptables.js';
import { incrementalScript, renderedTables } from './nft-incremental.js';
import * as nftables from './nftables.js';
import type { Backend, RenderedRules } from './render.js';
import { DataplaneError, type Runner } from './runner.js';
import { checkRendered } from './structure-check.js';

/** Loads the rules into the kernel: structure-checked, then one transaction (nft), or every family loaded into a throwaway namespace first, then each committed (iptables). */
export async function applyRules(runner: Runner, rendered: RenderedRules): Promise<void> {
  checkRendered(rendered);
  if (rendered.backend === 'nftables') {
    await nftables.applyNftables(runner, rendered.texts[0]!.text + nftables.stampScript(rendered));
    return;
  }
  // The kernel checks every family before any is touched, so a bad IPv6 rule does not leave IPv4 half-updated.
  for (const part of rendered.texts) await iptables.checkIptables(runner, part.family as iptables.Family, part.text);
  for (const part of rendered.texts) await iptables.applyIptables(runner, part.family as iptables.Family, part.text);
}

/**
 * Writes only what changed from `previous` (the rules last applied) to `next`, in one transaction per
 * restore: 'unchanged' when nothing did, 'full' when only a replacement can do it (a base chain or a
 * set's type changed).
 */
export async function applyChanges(runner: Runner, previous: RenderedRules, next: RenderedRules): Promise<'unchanged' | 'partial' | 'full'> {
  checkRendered(next);
  if (next.backend === 'nftables') {
    const script = incrementalScript(previous, next);
    if (script === undefined) {
      await applyRules(runner, next);
      return 'full';
    }
    if (script === '') return 'unchanged';
    await nftables.applyNftables(runner, script + nftables.stampScript(next));
    return 'partial';
  }
  if (next.texts.every((part, index) => part.text === previous.texts[index]?.text)) return 'unchanged';
  for (const [index, part] of next.texts.entries()) {
    await iptables.applyIptables(runner, part.family as iptables.Family, part.text, previous.texts[index]?.text);
  }
  return 'partial';
}

/**
 * A periodic full resync: the kernel holds exactly `rendered` afterwards, whatever someone changed.
 * nftables rewrites everything in one transaction without listing rules (listing 10,000 Services
 * takes the kernel longer than loading them); when the kernel refuses that (a set or base chain of
 * another shape, left by someone else or an older ferry), the tables are replaced instead. iptables
 * plans from iptables-save, as applyRules does.
 */
export async function reassertRules(runner: Runner, rendered: RenderedRules): Promise<void> {
  if (rendered.backend === 'iptables') return applyRules(runner, rendered);
  checkRendered(rendered);
  try {
    await nftables.reassertNftables(runner, rendered);
  } catch (error) {
    if (!(error instanceof DataplaneError)) throw error;
    await nftables.applyNftables(runner, rendered.texts[0]!.text + nftables.stampScript(rendered));
  }
}

/** What bringing the kernel in line did: nothing (it held the rules already), or a replacement, in rule lines. */
export interface ApplyOutcome {
  changed: boolean;
  added: number;
  removed: number;
}

/**
 * Makes the kernel hold the rendered rules and writes nothing when it already does (`ferry apply`, the
 * agent's start, so that a restart does not touch rules that match). nftables decides from the stamp
 * every ferry transaction leaves in its tables, before listing anything: the digest of these rules in
 * every table (and no other ferry table) means nothing to do; otherwise one `nft -f` replaces the tables,
 * with `added` the rule lines written and `removed` those the replaced stamp recorded. Listing the rules
 * instead would cost the kernel time growing with the square of their number (see readNftables). Tables
 * without a stamp (an older ferry, or the stamp removed) are compared by listing, as iptables always is.
 * `force` writes even when the kernel seems to hold the rules: it repairs what was changed behind a
 * stamp, which `ferry diff` shows.
 */
export async function applyIfChanged(runner: Runner, rendered: RenderedRules, options: { force?: boolean } = {}): Promise<ApplyOutcome> {
  checkRendered(rendered);
  if (rendered.backend === 'nftables') {
    const found = await nftables.readStamps(runner);
    const families = [...renderedTables(rendered).keys()];
    // A table of a family no longer rendered goes in the same transaction.
    const stale = [...found.keys()].filter((family) => !families.includes(family)).map((family) => `add table ${family} ferry\ndelete table ${family} ferry\n`).join('');
    const replace = () => nftables.applyNftables(runner, stale + rendered.texts[0]!.text + nftables.stampScript(rendered));
    const stamps = [...found.values()];
    if (stamps.every((held) => held !== undefined)) {
      if (!options.force && stampMatches(found, rendered)) return { changed: false, added: 0, removed: 0 };
      await replace();
      return { changed: true, added: nftables.rulesStamp(rendered).lines, removed: Math.max(0, ...stamps.map((held) => held!.lines)) };
    }
    const { current, desired } = await compareRules(runner, rendered);
    if (current === desired && stale === '' && !options.force) {
      // The rules match: recording the stamp lets the next comparison skip the listing.
      await nftables.applyNftables(runner, nftables.stampScript(rendered));
      return { changed: false, added: 0, removed: 0 };
    }
    await replace();
    return { changed: true, ...lineChanges(current, desired) };
  }
  const { current, desired } = await compareRules(runner, rendered);
  if (current === desired && !options.force) return { changed: false, added: 0, removed: 0 };
  await applyRules(runner, rendered);
  return { changed: true, ...lineChanges(current, desired) };
}

/** Whether ferry's stamp in the kernel says it holds these rules (nftables; iptables has no stamp). */
export async function stampedAs(runner: Runner, rendered: RenderedRules): Promise<boolean> {
  return rendered.backend === 'nftables' && stampMatches(await nftables.readStamps(runner), rendered);
}

/** Every rendered table, and no other ferry table, holds the stamp of these rules. */
function stampMatches(found: Map<string, nftables.Stamp | undefined>, rendered: RenderedRules): boolean {
  const families = [...renderedTables(rendered).keys()];
  const { digest } = nftables.rulesStamp(rendered);
  return found.size === families.length && families.every((family) => found.get(family)?.digest === digest);
}

function lineChanges(current: string, desired: string): { added: number; removed: number } {
  const changes = diffLines(current, desired);
  const count = (kind: 'added' | 'removed') => changes.filter((change) => change[kind]).reduce((sum, change) => sum + (change.count ?? 0), 0);
  return { added: count('added'), removed: count('removed') };
}

/**
 * The kernel's current ferry rules and the desired ones, both as the kernel lists them, whole: what
 * apply compares for tables without a stamp. Both ways read the kernel's real rules, never the stamp.
 */
export async function compareRules(runner: Runner, rendered: RenderedRules): Promise<nftables.Comparison> {
  checkRendered(rendered);
  if (rendered.backend === 'nftables') return nftables.compareByListing(runner, rendered.texts[0]!.text);
  let current = '';
  let desired = '';
  for (const part of rendered.texts) {
    const family = part.family as iptables.Family;
    current += labelled(family, await iptables.readIptables(runner, family));
    desired += labelled(family, await iptables.listAsKernelWould(runner, family, part.text));
  }
  return { current, desired };
}

/**
 * A unified diff from the kernel's rules to the desired ones; empty when they are the same. nftables
 * compares object digests and shows only the chains and sets that differ (compareNftables); `onListing`
 * hears when it has to list whole tables instead.
 */
export async function diffRules(runner: Runner, rendered: RenderedRules, onListing?: (why: string) => void): Promise<string> {
  checkRendered(rendered);
  const { current, desired } = rendered.backend === 'nftables'
    ? await nftables.compareNftables(runner, rendered.texts[0]!.text, onListing)
    : await compareRules(runner, rendered);
  if (current === desired) return '';
  return createTwoFilesPatch('kernel', 'desired', current, desired, '', '', { context: 3 });
}

/** Removes everything ferry owns for a backend, and nothing else. */
export async function cleanupRules(runner: Runner, backend: Backend): Promise<void> {
  if (backend === 'nftables') await nftables.cleanupNftables(runner);
  else for (const family of ['IPv4', 'IPv6'] as const) await iptables.cleanupIptables(runner, family);
}

const BACKENDS: Backend[] = ['nftables', 'iptables'];

/** Removes what every backend of ferry owns (`ferry cleanup`). */
export async function cleanupAllRules(runner: Runner): Promise<void> {
  for (const backend of BACKENDS) await cleanupRules(runner, backend);
}

/**
 * Before a backend takes over, the others' ferry rules go, as kube-proxy cleans up its other modes at
 * start: left in place they would still match first (iptables' nat hooks and nftables' run side by
 * side) and keep serving yesterday's endpoints. A backend whose tools are not installed has nothing.
 */
export async function removeOtherBackends(runner: Runner, backend: Backend): Promise<void> {
  for (const other of BACKENDS.filter((candidate) => candidate !== backend)) {
    try {
      await cleanupRules(runner, other);
    } catch (error) {
      if (!(error instanceof DataplaneError && error.result.exitCode === 127)) throw error;
    }
  }
}

function labelled(family: string, text: string): string {
  return text ? `# ${family}\n${text}` : '';
}
