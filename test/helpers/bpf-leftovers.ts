// The safety net of the eBPF kernel tests when a worker exits without its teardowns (a timeout, an
// interrupt): the cgroups and bpffs mounts they made are removed synchronously at exit, each step
// allowed to find nothing (the network namespaces have e2e's Lab for that).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const created = { cgroups: [] as string[], mounts: [] as string[] };

/** Remembers a cgroup the test made (its programs are detached and it is removed at exit). */
export function trackCgroup(path: string): void {
  created.cgroups.push(path);
}

/** Remembers a bpffs the test mounted (its pins, the mount and the directory above go at exit). */
export function trackMount(path: string): void {
  created.mounts.push(path);
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
