// The iptables backend: ferry's FERRY-* chains and the jumps into them, per family, through
// iptables-restore (see shell.ts). It keeps no stamp: every comparison lists the rules.
import type { NodeRules } from '../../rules/node-rules.js';
import type { ApplyOptions, ApplyOutcome, Backend, Comparison, RenderedRules, SyncKind } from '../backend.js';
import { deleteStaleFlows } from '../conntrack.js';
import { lineChanges } from '../line-changes.js';
import type { Runner } from '../runner.js';
import { readIptablesFrontends } from './frontends.js';
import { partialRestore } from './incremental.js';
import { headRules, iptablesOf, renderIptables } from './render.js';
import * as shell from './shell.js';
import { checkIptables } from './structure.js';

const familyOf = (part: RenderedRules['texts'][number]) => part.family as shell.Family;

/** What each family's kernel holds now (iptables-save) and the restore that turns it into the rendered rules. */
async function plan(runner: Runner, rendered: RenderedRules, everyChain = false): Promise<{ saved: string[]; plans: string[] }> {
  checkIptables(rendered);
  const saved = await Promise.all(rendered.texts.map((part) => shell.saveIptables(runner, familyOf(part))));
  return { saved, plans: rendered.texts.map((part, index) => shell.planRestore(saved[index]!, part.text, everyChain)) };
}

/**
 * Every family loaded into a throwaway namespace first, so a bad IPv6 rule does not leave IPv4
 * half-updated, and then each restores its plan.
 */
async function restore(runner: Runner, rendered: RenderedRules, plans: string[]): Promise<void> {
  for (const part of rendered.texts) await shell.checkIptables(runner, familyOf(part), part.text);
  for (const [index, part] of rendered.texts.entries()) await shell.restorePlan(runner, familyOf(part), plans[index]!);
}

/**
 * Planned from what the kernel holds, family by family: when it holds the rules already (the periodic
 * full sync, mostly), nothing is loaded or restored.
 */
async function apply(runner: Runner, rendered: RenderedRules): Promise<void> {
  const { plans } = await plan(runner, rendered);
  if (plans.some((restoring) => restoring !== '')) await restore(runner, rendered, plans);
}

/**
 * A change: where `next` was rendered from `previous`, only what its changed ports touch is restored
 * (partialRestore); otherwise the whole texts are compared chain by chain (planRestore).
 */
async function applyChanges(runner: Runner, previous: RenderedRules, next: RenderedRules): Promise<SyncKind> {
  checkIptables(next);
  const plans = next.texts.map((part, index) => {
    const family = familyOf(part);
    return (previous.iptables && next.iptables && partialRestore(previous.iptables, next.iptables, family))
      ?? shell.planRestore(previous.texts[index]?.text ?? '', part.text);
  });
  if (plans.every((plan) => plan === '')) return 'unchanged';
  for (const [index, part] of next.texts.entries()) await shell.restorePlan(runner, familyOf(part), plans[index]!);
  return 'partial';
}

/** Both families' ferry rules in the kernel and as the kernel would list the rendered ones. */
async function compare(runner: Runner, rendered: RenderedRules): Promise<Comparison> {
  checkIptables(rendered);
  let current = '';
  let desired = '';
  for (const part of rendered.texts) {
    current += labelled(familyOf(part), await shell.readIptables(runner, familyOf(part)));
    desired += labelled(familyOf(part), await shell.listAsKernelWould(runner, familyOf(part), part.text));
  }
  return { current, desired };
}

function labelled(family: string, text: string): string {
  return text ? `# ${family}\n${text}` : '';
}

/**
 * `ferry apply` and the agent's first sync: one iptables-save per family plans the restore; an empty
 * plan means the kernel holds the rules (the renderer writes each rule as iptables-save prints it).
 * The lines added and removed are counted between the saved rules and the rendered ones, both
 * canonicalised. `--force` writes every chain again, also those that hold their rules.
 */
async function applyIfChanged(runner: Runner, rules: NodeRules, options: ApplyOptions): Promise<ApplyOutcome> {
  const rendered = renderIptables(rules);
  const { saved, plans } = await plan(runner, rendered, options.force);
  if (plans.every((restoring) => restoring === '')) return { changed: false, added: 0, removed: 0, rendered };
  await restore(runner, rendered, plans);
  const canonical = (texts: string[]) => texts.map((text, index) => labelled(familyOf(rendered.texts[index]!), shell.canonicalIptables(text))).join('');
  return { changed: true, ...lineChanges(canonical(saved), canonical(rendered.texts.map((part) => part.text))), rendered };
}

export const iptablesBackend: Backend = {
  render: renderIptables,
  check: checkIptables,
  apply,
  applyChanges,
  // iptables plans from iptables-save, so a full apply is already a re-assert.
  reassert: apply,
  applyIfChanged,
  stampedAs: async () => false,
  compare,
  diff: (runner, rendered) => compare(runner, rendered),
  cleanup: async (runner) => {
    await Promise.all((['IPv4', 'IPv6'] as const).map((family) => shell.cleanupIptables(runner, family)));
  },
  clearStaleFlows: (runner, flows) => deleteStaleFlows(runner, flows),
  // Every connection it balances is a conntrack NAT entry, which the balancer reads itself.
  balancedSockets: async () => [],
  // Its rules match on addresses, not on interfaces: nothing appears that they do not cover.
  refresh: async () => [],
  frontends: (runner) => readIptablesFrontends(runner),
  ruleCounts: (rendered) => iptablesOf(rendered).families.map((family) => ({ family: family.rules.family, rules: family.portRules + headRules(family) })),
};
