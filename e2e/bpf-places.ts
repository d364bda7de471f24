// Where one test run's eBPF nodes keep their programs: a cgroup per node below a cgroup of the run's own
// under the cgroup2 mount (never the mount itself), and a bpffs of the run's own with a pin directory
// per node. Everything goes with the lab, programs detached first, also synchronously at exit.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cgroup2Mount } from '../dataplane/ebpf/placement.js';
import { execaRunner, runChecked } from '../dataplane/runner.js';

/** This machine's cgroup2 mount, as /proc/self/mountinfo says (here /sys/fs/cgroup/unified). */
export const CGROUP2 = cgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8')) ?? '/sys/fs/cgroup/unified';

export interface BpfPlace {
  cgroup: string;
  pinDir: string;
}

export class BpfPlaces {
  readonly root: string;
  readonly bpffs: string;
  private mounted = false;

  constructor(prefix: string) {
    // ferryk-: the prefix the suite lets ferry use (FERRY_TEST_PLACEMENT_PREFIX) and CI looks for.
    this.root = join(CGROUP2, `ferryk-${prefix.replace(/-$/, '')}`);
    this.bpffs = join(tmpdir(), `ferryk-${prefix}bpffs`);
  }

  /** A node's cgroup and pin directory, made now. */
  async place(role: string): Promise<BpfPlace> {
    if (!this.mounted) {
      await mkdir(this.root, { recursive: true });
      await mkdir(this.bpffs, { recursive: true });
      await runChecked(execaRunner, 'mounting the run\'s bpffs', 'mount', ['-t', 'bpf', 'bpf', this.bpffs]);
      this.mounted = true;
    }
    const cgroup = join(this.root, role);
    await mkdir(cgroup);
    return { cgroup, pinDir: join(this.bpffs, role) };
  }

  /**
   * Detaches what is attached to the cgroups, removes them (once their processes are gone), the pins
   * and the bpffs. What there is comes from the file system, so a later process can remove a
   * persistent lab's places (`npm run cluster -- down`).
   */
  async remove(): Promise<void> {
    for (const cgroup of this.nodeCgroups()) {
      for (const [type, id] of attachedPrograms(cgroup)) await execaRunner.run('bpftool', ['cgroup', 'detach', cgroup, type, 'id', id]);
      // Whatever still runs in it (the namespaces' processes were killed; a child may be exiting) is
      // killed too, and the cgroup goes once the kernel has reaped them.
      await writeFile(join(cgroup, 'cgroup.kill'), '1').catch(() => undefined);
      for (let tries = 0; tries < 100 && (await readFile(join(cgroup, 'cgroup.procs'), 'utf8')).trim(); tries++) await sleep(50);
      await rmdir(cgroup);
    }
    if (existsSync(this.root)) await rmdir(this.root);
    if (this.isMounted()) {
      await runChecked(execaRunner, 'unmounting the run\'s bpffs', 'umount', [this.bpffs]);
    }
    await rm(this.bpffs, { recursive: true, force: true });
    this.mounted = false;
  }

  removeSync(): void {
    // Each step may find nothing to do (gone already) or a busy cgroup; the others still run.
    const attempt = (step: () => void) => {
      try {
        step();
      } catch {
        // See above.
      }
    };
    for (const cgroup of this.nodeCgroups()) {
      for (const [type, id] of attachedPrograms(cgroup)) spawnSync('bpftool', ['cgroup', 'detach', cgroup, type, 'id', id], { stdio: 'ignore' });
      attempt(() => writeFileSync(join(cgroup, 'cgroup.kill'), '1'));
      attempt(() => rmdirSync(cgroup));
    }
    attempt(() => rmdirSync(this.root));
    // Unmounting the bpffs drops its pins with it.
    if (this.isMounted()) attempt(() => execFileSync('umount', ['-l', this.bpffs], { stdio: 'ignore' }));
    attempt(() => rmdirSync(this.bpffs));
  }

  /** The nodes' cgroups that exist now. */
  private nodeCgroups(): string[] {
    if (!existsSync(this.root)) return [];
    return readdirSync(this.root, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => join(this.root, entry.name));
  }

  private isMounted(): boolean {
    return this.mounted || readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((line) => line.split(' ')[4] === this.bpffs);
  }
}

/** [attach type, program id] of everything attached to the cgroup itself. */
function attachedPrograms(cgroup: string): Array<[string, string]> {
  const listing = String(spawnSync('bpftool', ['-j', 'cgroup', 'show', cgroup]).stdout ?? '').trim();
  return ((listing ? JSON.parse(listing) : []) as Array<{ id: number; attach_type: string }>).map((program) => [program.attach_type, String(program.id)]);
}
