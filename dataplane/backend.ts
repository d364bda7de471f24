// One backend: everything ferry does with one node's rules in one kind of kernel state. The agent, the
// CLI and the tests reach a backend only through this interface (dataplane.ts looks it up in backends.ts).
import type { FrontendState } from '../rules/frontends.js';
import type { L4Protocol, NodeRules } from '../rules/node-rules.js';
import type { StaleFlow } from '../rules/stale-flow.js';
import type { BackendName } from './backend-names.js';
import type { EbpfRendering } from './ebpf/backend.js';
import type { EbpfPlacement } from './ebpf/placement.js';
import type { NftRendering } from './nftables/render.js';
import type { IptablesRendering } from './iptables/render.js';
import type { PortChanges } from '../rules/port-changes.js';
import type { Runner } from './runner.js';

/** The rendered rule set of one backend, per family where the backend needs one text per family. */
export interface RenderedRules {
  backend: BackendName;
  /** nftables: one script for both families. iptables: one restore input per family. */
  texts: { family: 'IPv4' | 'IPv6' | 'both'; text: string }[];
  /** nftables: the tables in parts, one per Service port, so that an update writes only the ports that changed. */
  nft?: NftRendering;
  /** iptables: each family's rules in parts, one per Service port, so that an update restores only the ports that changed. */
  iptables?: IptablesRendering;
  /** ebpf: one text is the maps' listing, the other the companion nft script; this is what they come from. */
  ebpf?: EbpfRendering;
}

/** What a rendering after a change may start from. */
export interface RenderUpdate {
  previous: RenderedRules;
  changed: PortChanges;
}

/** Where a backend puts what it owns, beyond the network namespace it runs in (only eBPF has a choice). */
export interface BackendOptions {
  ebpf?: EbpfPlacement;
}

/**
 * What bringing the kernel in line did: nothing (it held the rules already), or a replacement, in rule
 * lines; and the rendering it wrote from, which later syncs start from.
 */
export interface ApplyOutcome {
  changed: boolean;
  added: number;
  removed: number;
  rendered: RenderedRules;
}

/** How applyIfChanged writes: `force` even when the kernel seems to hold the rules; where the backend puts them. */
export interface ApplyOptions {
  force?: boolean;
  backend?: BackendOptions;
}

/** The kernel's rules and the desired ones, both canonical and in the kernel's own words: what a diff compares. */
export interface Comparison {
  current: string;
  desired: string;
}

/** Live connections to one endpoint. */
export interface EndpointConnections {
  protocol: L4Protocol;
  ip: string;
  port: number;
  connections: number;
}

/** How a sync wrote: nothing, only what changed, or everything. */
export type SyncKind = 'unchanged' | 'partial' | 'full';

/** A first sync's preparation, started ahead of it (Backend.startSync). */
export interface SyncStart {
  /** Undoes the preparation when no sync took it up (the process stops first); nothing once one did. */
  discard(): Promise<void>;
}

export interface Backend {
  /**
   * The rules as this backend writes them; pure: the same rules give the same result. `update` is the
   * rendering of the rules before and which ports changed since: a backend may render only those again.
   */
  render(rules: NodeRules, options?: BackendOptions, update?: RenderUpdate): RenderedRules;
  /**
   * Starts what the next full sync with these options does before it needs the rules (eBPF: finding
   * the placement, loading the programs), so that it runs while the caller computes them; that sync
   * takes it up. Left out by a backend with nothing to do ahead.
   */
  startSync?(runner: Runner, options?: BackendOptions): SyncStart;
  /** Throws a StructureError when rendered rules are inconsistent (a bug in ferry, never the user's input). */
  check(rendered: RenderedRules): void;
  /**
   * eBPF only: the check of a printed map listing (what `ferry render` shows, and a test's). nftables
   * and iptables check the objects they print from and never read their own text back.
   */
  checkText?(text: string): void;
  /** Loads the rules, checked first: all or nothing, and a rejected set leaves the previous rules. */
  apply(runner: Runner, rendered: RenderedRules): Promise<void>;
  /** Writes only what changed from `previous` (the rules last applied) to `next`. */
  applyChanges(runner: Runner, previous: RenderedRules, next: RenderedRules): Promise<SyncKind>;
  /** The periodic full resync: afterwards the kernel holds exactly `rendered`, whatever someone changed. */
  reassert(runner: Runner, rendered: RenderedRules): Promise<void>;
  /**
   * Makes the kernel hold the rules and writes nothing when it already does; `force` writes anyway. It
   * renders them itself, so that it may write while it renders (nftables into a kernel without ferry's tables).
   */
  applyIfChanged(runner: Runner, rules: NodeRules, options: ApplyOptions): Promise<ApplyOutcome>;
  /** Whether the stamp ferry left says the kernel holds these rules (false for a backend without one). */
  stampedAs(runner: Runner, rendered: RenderedRules): Promise<boolean>;
  /** Both sides whole, as the kernel lists them. */
  compare(runner: Runner, rendered: RenderedRules): Promise<Comparison>;
  /** What `ferry diff` shows: may hold only the parts that differ; `onListing` hears when it lists everything. */
  diff(runner: Runner, rendered: RenderedRules, onListing?: (why: string) => void): Promise<Comparison>;
  /** Removes everything ferry owns in this backend, and nothing else. */
  cleanup(runner: Runner, options?: BackendOptions): Promise<void>;
  /** Moves the UDP flows compute found stale off their endpoints (conntrack entries, and for eBPF connected sockets). */
  clearStaleFlows(runner: Runner, flows: StaleFlow[], rendered: RenderedRules): Promise<void>;
  /**
   * Live connections this backend sent to endpoints without a conntrack NAT entry (which the balancer
   * counts itself): eBPF's socket path. Empty for the rule backends.
   */
  balancedSockets(runner: Runner, rendered: RenderedRules): Promise<EndpointConnections[]>;
  /**
   * Covers what the kernel gained since the last sync that the rules apply to (eBPF: interfaces that
   * appeared get the packet program); the agent calls it every few seconds, so it must be cheap. What
   * it did, for the log (nothing: empty).
   */
  refresh(runner: Runner, rendered: RenderedRules): Promise<string[]>;
  /** The Service frontends the kernel holds now, read back (`ferry services`); none when this backend holds nothing. */
  frontends(runner: Runner, options?: BackendOptions): Promise<FrontendState>;
  /** Rules per family, for the rules metric. */
  ruleCounts(rendered: RenderedRules): { family: 'IPv4' | 'IPv6'; rules: number }[];
}
