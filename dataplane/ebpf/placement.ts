// Where the eBPF backend's objects live on a node: the cgroup its socket programs are attached to, the
// bpffs directory its pins go under, and the interfaces the packet program goes on. Resolved once per
// command, in the mount namespace ferry runs in.
import { mkdir, readFile, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runChecked, type Runner } from '../runner.js';
import { EbpfUnavailableError } from './unavailable.js';

/** What the operator chose (`--cgroup-root`, `--bpf-root`, `--devices`); left out means the default. */
export interface EbpfPlacement {
  cgroupRoot?: string;
  bpfRoot?: string;
  devices?: readonly string[];
}

/** A placement with every path found or made. */
export interface ResolvedPlacement {
  cgroup: string;
  pinDir: string;
  devices?: readonly string[];
}

export const DEFAULT_BPF_ROOT = '/sys/fs/bpf/ferry';

/**
 * The test suite's safety net (its ava config sets FERRY_TEST_PLACEMENT_PREFIX): every cgroup and pin
 * directory must lie below one a test made, whose name starts with the prefix; the defaults (the
 * machine's root cgroup, /sys/fs/bpf/ferry) are refused.
 */
export function guardTestPlacement(path: string | undefined, flag: string): void {
  const prefix = process.env.FERRY_TEST_PLACEMENT_PREFIX;
  if (!prefix) return;
  if (!path?.split('/').some((part) => part.startsWith(prefix))) throw new EbpfUnavailableError([`${flag} ${path ?? '(default)'}: under test, only a path below a directory named ${prefix}* may be used`]);
}

const BPF_FS_MAGIC = 0xcafe4a11;
const CGROUP2_SUPER_MAGIC = 0x63677270;

const filesystemType = (path: string) => statfs(path).then((stats) => stats.type, () => undefined);
/** Whether `path` is on a bpffs (pins can go there). */
export const onBpffs = async (path: string) => (await filesystemType(path)) === BPF_FS_MAGIC;
/** Whether `path` is a directory of the cgroup2 hierarchy. */
export const isCgroup2 = async (path: string) => (await filesystemType(path)) === CGROUP2_SUPER_MAGIC;

/** Mounts a bpffs on `directory` (made if missing) unless one is there; whether it mounted one (so the caller may unmount it). */
export async function mountBpffs(directory: string, runner: Runner): Promise<boolean> {
  await mkdir(directory, { recursive: true });
  if (await onBpffs(directory)) return false;
  await runChecked(runner, `mounting a bpffs on ${directory}`, 'mount', ['-t', 'bpf', 'bpf', directory]);
  return true;
}

/** The first cgroup2 mount point in a mountinfo text (field 5 is the mount point, the type follows " - "). */
export function cgroup2Mount(mountinfo: string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    const [before, after] = line.split(' - ');
    if (after?.split(' ')[0] === 'cgroup2') return before!.split(' ')[4]!.replace(/\\040/g, ' ');
  }
  return undefined;
}

// Where ferry mounts cgroup2 for itself when its mount namespace has none.
const OWN_CGROUP2 = '/run/ferry/cgroup2';

/**
 * The cgroup directory: `--cgroup-root`, else the cgroup2 mount of /proc/self/mountinfo. Where no
 * cgroup2 is mounted (`ip netns exec` gives its command a /sys of its own, without the cgroup mounts),
 * ferry mounts the hierarchy on /run/ferry/cgroup2 (in that private mount namespace it goes with the
 * command) and finds the requested path there by its tail: /sys/fs/cgroup/unified/a/b is a/b below
 * whatever mount it was written for.
 */
export async function resolveCgroup(runner: Runner, requested?: string): Promise<string> {
  guardTestPlacement(requested, '--cgroup-root');
  let mount = cgroup2Mount(await readFile('/proc/self/mountinfo', 'utf8'));
  // Mounted by an earlier call of this process (an agent resolves at every full sync).
  let own = mount === OWN_CGROUP2;
  if (!mount) {
    mount = OWN_CGROUP2;
    if (!(await isCgroup2(mount))) {
      await mkdir(mount, { recursive: true });
      await runChecked(runner, `mounting cgroup2 on ${mount}`, 'mount', ['-t', 'cgroup2', 'none', mount]);
    }
    own = true;
  }
  if (!requested) return mount;
  const parts = requested.split('/').filter(Boolean);
  const candidates = own ? parts.map((_, index) => join(mount, ...parts.slice(index))) : [requested];
  for (const candidate of candidates) if (await isCgroup2(candidate)) return candidate;
  throw new EbpfUnavailableError([`--cgroup-root ${requested} is not a cgroup2 directory${own ? ` (nor below this namespace's own cgroup2 mount, ${mount})` : ''}`]);
}

/**
 * The pin directory, on a bpffs: when none is mounted there, one is mounted, on /sys/fs/bpf for the
 * default (as systemd does at boot; `ip netns exec` leaves /sys/fs/bpf empty), else on the directory itself.
 */
export async function resolvePinDir(runner: Runner, requested = DEFAULT_BPF_ROOT): Promise<string> {
  guardTestPlacement(requested === DEFAULT_BPF_ROOT ? undefined : requested, '--bpf-root');
  // The directory itself, or the nearest that exists above it, on a bpffs: pins can go there.
  let existing = requested;
  while ((await filesystemType(existing)) === undefined && dirname(existing) !== existing) existing = dirname(existing);
  if (await onBpffs(existing)) return requested;
  await mountBpffs(dirname(requested) === '/sys/fs/bpf' ? '/sys/fs/bpf' : requested, runner);
  return requested;
}

/** The cgroup and the pin directory found (or mounted), for a command in this mount namespace. */
export async function resolvePlacement(runner: Runner, placement: EbpfPlacement): Promise<ResolvedPlacement> {
  return { cgroup: await resolveCgroup(runner, placement.cgroupRoot), pinDir: await resolvePinDir(runner, placement.bpfRoot), devices: placement.devices };
}
