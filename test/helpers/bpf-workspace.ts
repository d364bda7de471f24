// What every eBPF kernel test works in: a cgroup under the cgroup2 mount and a bpffs of its own for the
// pins, both removed at the test's end, and (the safety net when a worker exits without its teardowns:
// a timeout, an interrupt) synchronously at exit, each step allowed to find nothing. The network
// namespaces have e2e's Lab for that.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { detachSocketPrograms, mountBpffs, unloadSocketPrograms } from '../../dataplane/ebpf/programs.js';
import { execaRunner, runChecked } from '../../dataplane/runner.js';

/** This machine's cgroup2 mount: test cgroups go below it, never on it. */
export const CGROUP2 = '/sys/fs/cgroup/unified';

const created = { cgroups: [] as string[], mounts: [] as string[] };

/**
 * A cgroup and a pin directory on a bpffs of this test's own; at the test's end the cgroup's ferry
 * programs are detached, the pins removed, the bpffs unmounted.
 */
export async function bpfWorkspace(t: ExecutionContext): Promise<{ cgroup: string; pinDir: string }> {
  const name = `ferryk-${randomBytes(4).toString('hex')}`;
  const cgroup = join(CGROUP2, name);
  const bpffs = join(tmpdir(), name, 'bpffs');
  const pinDir = join(bpffs, 'ferry');
  let mounted = false;
  // Registered first, so that it runs however far the set-up got.
  t.teardown(async () => {
    if (existsSync(cgroup)) {
      await detachSocketPrograms(cgroup).catch(() => undefined);
      await rmdir(cgroup);
    }
    await unloadSocketPrograms(pinDir);
    if (mounted) await runChecked(execaRunner, 'unmounting the test bpffs', 'umount', [bpffs]);
    await rm(join(tmpdir(), name), { recursive: true, force: true });
  });
  await mkdir(cgroup);
  created.cgroups.push(cgroup);
  mounted = await mountBpffs(bpffs);
  created.mounts.push(bpffs);
  return { cgroup, pinDir };
}

/** What the tests made and is still there: empty once every teardown ran. */
export function leftovers(): string[] {
  return [...created.cgroups, ...created.mounts].filter((path) => existsSync(path));
}

const sync = (command: string, ...args: string[]) => spawnSync(command, args, { stdio: 'ignore' });
process.once('exit', () => {
  for (const cgroup of created.cgroups.filter((path) => existsSync(path))) {
    const listing = String(spawnSync('bpftool', ['-j', 'cgroup', 'show', cgroup]).stdout ?? '').trim();
    for (const program of (listing ? JSON.parse(listing) : []) as Array<{ id: number; attach_type: string }>) sync('bpftool', 'cgroup', 'detach', cgroup, program.attach_type, 'id', String(program.id));
    sync('rmdir', cgroup);
  }
  for (const mount of created.mounts.filter((path) => existsSync(path))) {
    sync('rm', '-rf', join(mount, 'ferry'));
    sync('umount', mount);
    sync('rm', '-rf', dirname(mount));
  }
});
