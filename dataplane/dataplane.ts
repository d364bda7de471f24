// The dataplane facade: apply, diff and clean up rendered rules with whichever backend they were rendered for.
import { createTwoFilesPatch } from 'diff';
import * as iptables from './iptables.js';
import { incrementalScript } from './nft-incremental.js';
import * as nftables from './nftables.js';
import type { Backend, RenderedRules } from './render.js';
import { DataplaneError, type Runner } from './runner.js';
import { checkRendered } from './structure-check.js';

/** Loads the rules into the kernel: structure-checked, then one transaction (nft), or every family loaded into a throwaway namespace first, then each committed (iptables). */
export async function applyRules(runner: Runner, rendered: RenderedRules): Promise<void> {
  checkRendered(rendered);
  if (rendered.backend === 'nftables') {
    await nftables.applyNftables(runner, rendered.texts[0]!.text);
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
    await nftables.applyNftables(runner, script);
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
    await nftables.applyNftables(runner, rendered.texts[0]!.text);
  }
}

/** The kernel's current ferry rules and the desired ones, both as the kernel lists them. */
export async function compareRules(runner: Runner, rendered: RenderedRules): Promise<{ current: string; desired: string }> {
  checkRendered(rendered);
  if (rendered.backend === 'nftables') {
    return {
      current: await nftables.readNftables(runner),
      desired: await nftables.listAsKernelWould(runner, rendered.texts[0]!.text),
    };
  }
  let current = '';
  let desired = '';
  for (const part of rendered.texts) {
    const family = part.family as iptables.Family;
    current += labelled(family, await iptables.readIptables(runner, family));
    desired += labelled(family, await iptables.listAsKernelWould(runner, family, part.text));
  }
  return { current, desired };
}

/** A unified diff from the kernel's rules to the desired ones; empty when they are the same. */
export async function diffRules(runner: Runner, rendered: RenderedRules): Promise<string> {
  const { current, desired } = await compareRules(runner, rendered);
  if (current === desired) return '';
  return createTwoFilesPatch('kernel', 'desired', current, desired, '', '', { context: 3 });
}

/** Removes everything ferry owns for a backend, and nothing else. */
export async function cleanupRules(runner: Runner, backend: Backend): Promise<void> {
  if (backend === 'nftables') await nftables.cleanupNftables(runner);
  else for (const family of ['IPv4', 'IPv6'] as const) await iptables.cleanupIptables(runner, family);
}

function labelled(family: string, text: string): string {
  return text ? `# ${family}\n${text}` : '';
}
