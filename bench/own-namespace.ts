// Benchmarks load rules into the kernel: only ever in a network namespace of their own, never in the
// machine's, whoever starts them and however (bench/scale.ts, or a script run by hand).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CGROUP2 } from '../e2e/bpf-places.js';
import { fileURLToPath } from 'node:url';

// The namespace a script left when it made its own. It names what not to be in, not what to be in:
// inherited by a shell in that same namespace, it still sends the script into a new one.
const LEFT = 'FERRY_BENCH_LEFT_NETNS';

/**
 * Called first by every benchmark script that touches the kernel: unless this process is in the new
 * namespace it made for itself, it runs the script again in a new network namespace (loopback up) and
 * exits with its status. (PID 1's namespace cannot be read here, so "the machine's" is not knowable.)
 */
export function ownNetworkNamespace(scriptUrl: string): void {
  const current = readlinkSync('/proc/self/ns/net');
  const left = process.env[LEFT];
  if (left !== undefined && left !== current) return;
  try {
    execFileSync('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', process.execPath, ...process.execArgv, fileURLToPath(scriptUrl), ...process.argv.slice(2)], {
      stdio: 'inherit', env: { ...process.env, [LEFT]: current },
    });
    process.exit(0);
  } catch (error) {
    process.exit((error as { status?: number }).status ?? 1);
  }
}

/**
 * For the eBPF backend: a cgroup below the cgroup2 mount and a bpffs, both of this run's own and named
 * ferryk-bench-*, with this process moved into the cgroup (unless `enter: false`); `remove` moves it
 * back and takes both away.
 */
export async function benchPlacement(options: { enter?: boolean } = {}): Promise<{ cgroup: string; pinDir: string; remove(): Promise<void> }> {
  const name = `ferryk-bench-${randomBytes(4).toString('hex')}`;
  const cgroup = join(CGROUP2, name);
  const bpffs = join(tmpdir(), name);
  const home = join(CGROUP2, readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((line) => line.startsWith('0::'))!.slice(3));
  mkdirSync(cgroup);
  mkdirSync(bpffs);
  execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs]);
  const enter = options.enter ?? true;
  if (enter) writeFileSync(join(cgroup, 'cgroup.procs'), String(process.pid));
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    // Programs still attached (a run that failed half-way) go with their cgroup's removal only once detached.
    const listing = execFileSync('bpftool', ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8' }).trim();
    for (const { id, attach_type: type } of (listing ? JSON.parse(listing) : []) as Array<{ id: number; attach_type: string }>) {
      execFileSync('bpftool', ['cgroup', 'detach', cgroup, type, 'id', String(id)]);
    }
    if (enter) writeFileSync(join(home, 'cgroup.procs'), String(process.pid));
    rmdirSync(cgroup);
    execFileSync('umount', [bpffs]);
    rmdirSync(bpffs);
  };
  // Also when the run fails: the process exits, and nothing of it may stay.
  process.once('exit', remove);
  return { cgroup, pinDir: join(bpffs, 'ferry'), remove: async () => remove() };
}
