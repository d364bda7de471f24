// Reading, comparing and loading the eBPF backend's companion table (companion.ts renders it).
import { cidrOf } from '../../rules/frontends.js';
import { buildNftDigest, parseDigests, type ObjectDigests } from '../nftables/digest.js';
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
 * The companion table's objects as nft-digest reads them from netlink (no listing: at 50,000 Services
 * its sets make `nft list` take more than half a second); undefined when the helper cannot be built.
 */
export async function readCompanionDigests(runner: Runner): Promise<ObjectDigests | undefined> {
  const helper = await buildNftDigest({ runner }).catch(() => undefined);
  return helper === undefined ? undefined : parseDigests(await runChecked(runner, 'reading the eBPF companion table failed', helper, COMPANION_TABLE));
}

/** The digests the script's table has once loaded, in a throwaway namespace (a script the kernel refuses fails here); undefined without the helper. */
export async function companionDigestsAsKernelWould(runner: Runner, script: string): Promise<ObjectDigests | undefined> {
  const helper = await buildNftDigest({ runner }).catch(() => undefined);
  return helper === undefined ? undefined : parseDigests(await runInThrowawayNamespace(runner, 'the kernel rejected the eBPF companion table', 'sh', ['-c', 'nft -f - && "$0" "$@"', helper, ...COMPANION_TABLE], script));
}

/** How the kernel lists the script once loaded, in a throwaway namespace: a script it refuses fails here, before any write. */
export async function companionAsKernelWould(runner: Runner, script: string): Promise<string> {
  return canonicalNftables(await runInThrowawayNamespace(runner, 'the kernel rejected the eBPF companion table', 'sh', ['-c', 'nft -f - && nft -s list ruleset'], script));
}

/** Loads the companion table unless the kernel holds it already (`desired`: companionAsKernelWould's listing); whether it wrote. */
export async function syncCompanion(runner: Runner, script: string, desired: string, force: boolean): Promise<boolean> {
  if (!force && (await readCompanion(runner)) === desired) return false;
  await runChecked(runner, 'loading the eBPF companion table', 'nft', ['-f', '-'], script);
  return true;
}

/** Removes the companion table (a missing table, or no nft at all, is fine). */
export async function removeCompanion(runner: Runner): Promise<void> {
  const table = COMPANION_TABLE.join(' ');
  const removed = await runner.run('nft', ['-f', '-'], `add table ${table}\ndelete table ${table}\n`);
  if (removed.exitCode !== 0 && removed.exitCode !== 127) throw new DataplaneError('nft -f -', removed, 'removing the eBPF companion table');
}
