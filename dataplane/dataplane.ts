// The dataplane facade: apply, diff and clean up rendered rules with the backend that rendered them
// (backends.ts), and hand over between backends.
import { createTwoFilesPatch } from 'diff';
import type { ApplyOptions, ApplyOutcome, BackendOptions, Comparison, EndpointConnections, RenderedRules, SyncKind, SyncStart } from './backend.js';
import type { NodeRules } from '../rules/node-rules.js';
import { BACKEND_NAMES, type BackendName } from './backend-names.js';
import { backendOf, BACKENDS } from './backends.js';
import type { FrontendState } from '../rules/frontends.js';
import type { StaleFlow } from '../rules/stale-flow.js';
import { DataplaneError, type Runner } from './runner.js';

export type { ApplyOutcome, Comparison, SyncKind, SyncStart };

/** Loads the rules into the kernel: structure-checked, then all or nothing (see each backend). */
export function applyRules(runner: Runner, rendered: RenderedRules): Promise<void> {
  return backendOf(rendered).apply(runner, rendered);
}

/** Writes only what changed from `previous` (the rules last applied) to `next`: 'full' when only a replacement can. */
export function applyChanges(runner: Runner, previous: RenderedRules, next: RenderedRules): Promise<SyncKind> {
  return backendOf(next).applyChanges(runner, previous, next);
}

/** A periodic full resync: the kernel holds exactly `rendered` afterwards, whatever someone changed. */
export function reassertRules(runner: Runner, rendered: RenderedRules): Promise<void> {
  return backendOf(rendered).reassert(runner, rendered);
}

/**
 * Makes the kernel hold the node's rules in a backend and writes nothing when it already does (`ferry
 * apply`, the agent's start, so that a restart does not touch rules that match). `force` writes anyway.
 * The backend renders them (it may write while it renders); the outcome carries the rendering.
 */
export function applyIfChanged(runner: Runner, rules: NodeRules, backend: BackendName, options: ApplyOptions = {}): Promise<ApplyOutcome> {
  return BACKENDS[backend].applyIfChanged(runner, rules, options);
}

/**
 * Starts what a backend's next full sync does before it needs the rules (eBPF: loads its programs), so
 * that it runs while the caller computes them; `discard` undoes it when no sync comes.
 */
export function startSync(runner: Runner, backend: BackendName, options?: BackendOptions): SyncStart {
  return BACKENDS[backend].startSync?.(runner, options) ?? { discard: async () => undefined };
}

/** Whether ferry's stamp in the kernel says it holds these rules (a backend without a stamp: never). */
export function stampedAs(runner: Runner, rendered: RenderedRules): Promise<boolean> {
  return backendOf(rendered).stampedAs(runner, rendered);
}

/** The kernel's current ferry rules and the desired ones, both whole, as the kernel lists them. */
export function compareRules(runner: Runner, rendered: RenderedRules): Promise<Comparison> {
  return backendOf(rendered).compare(runner, rendered);
}

/**
 * A unified diff from the kernel's rules to the desired ones; empty when they are the same. nftables
 * shows only the chains and sets that differ; `onListing` hears when whole tables are listed instead.
 */
export async function diffRules(runner: Runner, rendered: RenderedRules, onListing?: (why: string) => void): Promise<string> {
  const { current, desired } = await backendOf(rendered).diff(runner, rendered, onListing);
  if (current === desired) return '';
  return createTwoFilesPatch('kernel', 'desired', current, desired, '', '', { context: 3 });
}

/** Removes everything ferry owns for a backend, and nothing else. */
export function cleanupRules(runner: Runner, backend: BackendName, options?: BackendOptions): Promise<void> {
  return BACKENDS[backend].cleanup(runner, options);
}

/**
 * The Service frontends each backend holds in the kernel now (`ferry services`), by backend; a backend
 * whose tools are not installed holds none.
 */
export async function readFrontends(runner: Runner, backends: readonly BackendName[], options?: BackendOptions): Promise<Map<BackendName, FrontendState>> {
  const read = await Promise.all(backends.map(async (backend): Promise<[BackendName, FrontendState]> => {
    try {
      return [backend, await BACKENDS[backend].frontends(runner, options)];
    } catch (error) {
      if (error instanceof DataplaneError && error.result.exitCode === 127) return [backend, { families: [], frontends: [] }];
      throw error;
    }
  }));
  return new Map(read);
}

/** Removes what every backend of ferry owns (`ferry cleanup`). */
export async function cleanupAllRules(runner: Runner, options?: BackendOptions): Promise<void> {
  for (const backend of BACKEND_NAMES) await cleanupRules(runner, backend, options);
}

/**
 * Before a backend takes over, the others' ferry rules go, as kube-proxy cleans up its other modes at
 * start: left in place they would still match first (iptables' nat hooks and nftables' run side by
 * side, and eBPF's socket programs translate before either) and keep serving yesterday's endpoints. A
 * backend whose tools are not installed has nothing. `options` says where eBPF's programs are.
 */
export async function removeOtherBackends(runner: Runner, backend: BackendName, options?: BackendOptions): Promise<void> {
  // Each backend's objects are its own (tables, chains, programs): the cleanups can run side by side.
  await Promise.all(BACKEND_NAMES.filter((candidate) => candidate !== backend).map(async (other) => {
    try {
      await cleanupRules(runner, other, options);
    } catch (error) {
      if (!(error instanceof DataplaneError && error.result.exitCode === 127)) throw error;
    }
  }));
}

/** Moves stale UDP flows off the endpoints that went away, as the backend that rendered the rules holds them. */
export function clearStaleFlows(runner: Runner, flows: StaleFlow[], rendered: RenderedRules): Promise<void> {
  return flows.length ? backendOf(rendered).clearStaleFlows(runner, flows, rendered) : Promise.resolve();
}

/** Live connections the backend balanced without conntrack NAT (eBPF's socket path), for the balancer. */
export function balancedSockets(runner: Runner, rendered: RenderedRules): Promise<EndpointConnections[]> {
  return backendOf(rendered).balancedSockets(runner, rendered);
}

/** Lets the backend cover what appeared since the last sync (eBPF: new interfaces); what it did. */
export function refreshRules(runner: Runner, rendered: RenderedRules): Promise<string[]> {
  return backendOf(rendered).refresh(runner, rendered);
}

/** Rules per family in the rendered set, for the rules metric. */
export function ruleCounts(rendered: RenderedRules): { family: 'IPv4' | 'IPv6'; rules: number }[] {
  return backendOf(rendered).ruleCounts(rendered);
}
