// Where one test run's eBPF nodes keep their programs: a cgroup per node below a cgroup of the run's own
// under the cgroup2 mount (never the mount itself), and a bpffs of the run's own with a pin directory
// per node. Everything goes with the lab, programs detached first, also synchronously at exit.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
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
  private readonly cgroups: string[] = [];

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
    this.cgroups.push(cgroup);
    return { cgroup, pinDir: join(this.bpffs, role) };
  }

  /** Detaches what is attached to the cgroups, removes them (once their processes are gone), the pins and the bpffs. */
  async remove(): Promise<void> {
    for (const cgroup of [...this.cgroups].reverse()) {
      if (existsSync(cgroup)) {
        for (const [type, id] of attachedPrograms(cgroup)) await execaRunner.run('bpftool', ['cgroup', 'detach', cgroup, type, 'id', id]);
        // Whatever still runs in it (the namespaces' processes were killed; a child may be exiting) is
        // killed too, and the cgroup goes once the kernel has reaped them.
        await writeFile(join(cgroup, 'cgroup.kill'), '1').catch(() => undefined);
        for (let tries = 0; tries < 100 && (await readFile(join(cgroup, 'cgroup.procs'), 'utf8')).trim(); tries++) await sleep(50);
        await rmdir(cgroup);
      }
      this.cgroups.splice(this.cgroups.indexOf(cgroup), 1);
    }
    if (existsSync(this.root)) await rmdir(this.root);
    if (this.mounted) {
      await rm(this.bpffs, { recursive: true, force: true }).catch(() => undefined);
      await runChecked(execaRunner, 'unmounting the run\'s bpffs', 'umount', [this.bpffs]);
      this.mounted = false;
    }
    await rm(this.bpffs, { recursive: true, force: true });
  }

  removeSync(): void {
    for (const cgroup of this.cgroups.splice(0).reverse().filter((path) => existsSync(path))) {
      for (const [type, id] of attachedPrograms(cgroup)) spawnSync('bpftool', ['cgroup', 'detach', cgroup, type, 'id', id], { stdio: 'ignore' });
      try {
        writeFileSync(join(cgroup, 'cgroup.kill'), '1');
      } catch {
        // Empty already.
      }
      try {
        rmdirSync(cgroup);
      } catch {
        // Still has processes: left for `npm run cluster -- down` or a reboot to find.
      }
    }
    // Each step may find nothing to do (gone already) or a busy cgroup; the others still run.
    const attempt = (step: () => void) => {
      try {
        step();
      } catch {
        // See above.
      }
    };
    attempt(() => rmdirSync(this.root));
    // Unmounting the bpffs drops its pins with it.
    if (this.mounted) attempt(() => execFileSync('umount', ['-l', this.bpffs], { stdio: 'ignore' }));
    attempt(() => rmdirSync(this.bpffs));
  }
}

/** [attach type, program id] of everything attached to the cgroup itself. */
function attachedPrograms(cgroup: string): Array<[string, string]> {
  const listing = String(spawnSync('bpftool', ['-j', 'cgroup', 'show', cgroup]).stdout ?? '').trim();
  return ((listing ? JSON.parse(listing) : []) as Array<{ id: number; attach_type: string }>).map((program) => [program.attach_type, String(program.id)]);
}
