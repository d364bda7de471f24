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

/**
 * Planned from what the kernel holds, family by family: when it holds the rules already (the periodic
 * full sync, mostly), nothing is loaded or restored. Otherwise every family is loaded into a throwaway
 * namespace first, so a bad IPv6 rule does not leave IPv4 half-updated, and then each restores its plan.
 */
async function apply(runner: Runner, rendered: RenderedRules): Promise<void> {
  checkIptables(rendered);
  const plans: string[] = [];
  for (const part of rendered.texts) plans.push(shell.planRestore(await shell.saveIptables(runner, familyOf(part)), part.text));
  if (plans.every((plan) => plan === '')) return;
  for (const part of rendered.texts) await shell.checkIptables(runner, familyOf(part), part.text);
  for (const [index, part] of rendered.texts.entries()) await shell.restorePlan(runner, familyOf(part), plans[index]!);
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

async function applyIfChanged(runner: Runner, rules: NodeRules, options: ApplyOptions): Promise<ApplyOutcome> {
  const rendered = renderIptables(rules);
  const { current, desired } = await compare(runner, rendered);
  if (current === desired && !options.force) return { changed: false, added: 0, removed: 0, rendered };
  await apply(runner, rendered);
  return { changed: true, ...lineChanges(current, desired), rendered };
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
