// Reading, comparing and loading the eBPF backend's companion table (companion.ts renders it).
import { cidrOf } from '../../rules/frontends.js';
import { buildNftDigest, differingObjects, parseDigests, type ObjectDigests } from '../nftables/digest.js';
import { canonicalNftables } from '../nftables/shell.js';
import type { CompanionFacts } from './frontends.js';
import { DataplaneError, runChecked, runInThrowawayNamespace, type Runner } from '../runner.js';

const COMPANION_TABLE = ['inet', 'ferry-ebpf'];

/** The companion table in the kernel's words (`-s`: counters' numbers left out). */
export async function readCompanion(runner: Runner): Promise<string> {
  const result = await runner.run('nft', ['-s', 'list', 'table', ...COMPANION_TABLE]);
  if (result.exitCode === 0) return canonicalNftables(result.stdout);
  if (/No such file or directory/.test(result.stderr)) return '';
  throw new DataplaneError(`nft list table ${COMPANION_TABLE.join(' ')}`, result, 'reading the eBPF companion table failed');
}

/** The cluster IPs and service CIDRs of both families as the companion table's sets hold them (none without the table). */
export async function readCompanionFacts(runner: Runner): Promise<CompanionFacts> {
  const result = await runner.run('nft', ['-j', 'list', 'table', ...COMPANION_TABLE]);
  if (result.exitCode !== 0) {
    if (/No such file or directory/.test(result.stderr)) return { clusterIPs: new Set(), serviceCIDRs: [] };
    throw new DataplaneError(`nft -j list table ${COMPANION_TABLE.join(' ')}`, result, 'reading the eBPF companion table failed');
  }
  const listing = JSON.parse(result.stdout) as { nftables: { set?: { name: string; elem?: unknown[] } }[] };
  const elements = (prefix: string) => listing.nftables.flatMap(({ set }) => (set?.name.startsWith(prefix) ? set.elem ?? [] : []));
  const cidr = (element: unknown) => {
    const prefix = (element as { prefix?: { addr: string; len: number } }).prefix;
    return prefix ? `${prefix.addr}/${prefix.len}` : cidrOf(String(element));
  };
  return { clusterIPs: new Set(elements('cluster-ips-').map(String)), serviceCIDRs: elements('service-cidrs-').map(cidr) };
}

/**
 * The companion table as ferry compares it: the digests nft-digest reads from netlink (no listing: at
 * 50,000 Services its sets make `nft list` take more than half a second), or, where the helper cannot
 * be built, its listing.
 */
export type CompanionView = { digests: ObjectDigests } | { listing: string };

/** The kernel's companion table as a view of `kind` (digests where the helper builds). */
export async function readCompanionView(runner: Runner, kind: 'digests' | 'listing' = 'digests'): Promise<CompanionView> {
  const helper = kind === 'digests' ? await buildNftDigest({ runner }).catch(() => undefined) : undefined;
  if (helper === undefined) return { listing: await readCompanion(runner) };
  return { digests: parseDigests(await runChecked(runner, 'reading the eBPF companion table failed', helper, COMPANION_TABLE)) };
}

/** The script's table as the kernel holds it once loaded, in a throwaway namespace: a script the kernel refuses fails here, before any write. */
export async function companionAsKernelWould(runner: Runner, script: string): Promise<CompanionView> {
  const helper = await buildNftDigest({ runner }).catch(() => undefined);
  if (helper === undefined) return { listing: await companionListingAsKernelWould(runner, script) };
  return { digests: parseDigests(await runInThrowawayNamespace(runner, 'the kernel rejected the eBPF companion table', 'sh', ['-c', 'nft -f - && "$0" "$@"', helper, ...COMPANION_TABLE], script)) };
}

export function sameCompanion(a: CompanionView, b: CompanionView): boolean {
  if ('digests' in a && 'digests' in b) return differingObjects(a.digests, b.digests).length === 0;
  return 'listing' in a && 'listing' in b && a.listing === b.listing;
}

/** How the kernel lists the script once loaded, in a throwaway namespace (the desired side of a listed diff). */
export async function companionListingAsKernelWould(runner: Runner, script: string): Promise<string> {
  return canonicalNftables(await runInThrowawayNamespace(runner, 'the kernel rejected the eBPF companion table', 'sh', ['-c', 'nft -f - && nft -s list ruleset'], script));
}

/**
 * A full sync's first step with the companion table, before any map write. Where the kernel holds no
 * companion table (a first apply), it is loaded at once: nft takes a script whole or not at all, so one
 * it refuses stops the sync with nothing of ferry's changed, and no throwaway namespace is needed.
 * Otherwise the table as the kernel would hold it (a throwaway namespace, which refuses a bad script
 * the same way), for syncCompanion to compare with the live one once the maps are written.
 */
export async function prepareCompanion(runner: Runner, script: string): Promise<{ loaded: true } | { loaded: false; desired: CompanionView }> {
  const live = await readCompanionView(runner);
  if ('digests' in live ? live.digests.size > 0 : live.listing !== '') return { loaded: false, desired: await companionAsKernelWould(runner, script) };
  await runChecked(runner, 'loading the eBPF companion table', 'nft', ['-f', '-'], script);
  return { loaded: true };
}

/** Loads the companion table unless the kernel holds it already (`desired`: companionAsKernelWould's view); whether it wrote. */
export async function syncCompanion(runner: Runner, script: string, desired: CompanionView, force: boolean): Promise<boolean> {
  if (!force && sameCompanion(await readCompanionView(runner, 'digests' in desired ? 'digests' : 'listing'), desired)) return false;
  await runChecked(runner, 'loading the eBPF companion table', 'nft', ['-f', '-'], script);
  return true;
}

/** Removes the companion table (a missing table, or no nft at all, is fine). */
export async function removeCompanion(runner: Runner): Promise<void> {
  const table = COMPANION_TABLE.join(' ');
  const removed = await runner.run('nft', ['-f', '-'], `add table ${table}\ndelete table ${table}\n`);
  if (removed.exitCode !== 0 && removed.exitCode !== 127) throw new DataplaneError('nft -f -', removed, 'removing the eBPF companion table');
}
