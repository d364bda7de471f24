// Network namespaces that a test run creates, links and always deletes: the hosts of the e2e cluster.
import { execFileSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { execa, type Options, type ResultPromise } from 'execa';

/** A process started in a namespace. */
export type Child = ResultPromise<Options>;
import { execaRunner, runChecked, type RunResult } from '../dataplane/runner.js';
import { BpfPlaces } from './bpf-places.js';

/** One network namespace: a node, a pod, the fabric or an external client. */
export class Namespace {
  /** Set: every command started in the namespace runs in this cgroup (an eBPF node's, for its pods and itself). */
  cgroup: string | undefined;

  constructor(readonly name: string, private readonly lab: Lab) {}

  /** `ip netns exec` of the command, by way of the cgroup when there is one. */
  private argv(command: string[]): [string, string[]] {
    const inNamespace = ['ip', 'netns', 'exec', this.name, ...command];
    if (!this.cgroup) return ['ip', inNamespace.slice(1)];
    return ['sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', this.cgroup, ...inNamespace]];
  }

  /** Runs a command inside the namespace and returns what it left, whatever its exit code. */
  exec(command: string[], input?: string): Promise<RunResult> {
    return execaRunner.run(...this.argv(command), input);
  }

  /** Runs a command inside the namespace; throws with its stderr unless it exits 0. */
  run(command: string[], input?: string): Promise<string> {
    return runChecked(execaRunner, `in ${this.name}`, ...this.argv(command), input);
  }

  /** Starts a long-running command in the namespace (output to `log` when given); the lab kills it when it is destroyed. */
  spawn(command: string[], options: { log?: string } = {}): Child {
    // The child writes its log itself (an inherited descriptor), so no pipe ties it to this process.
    const log = options.log ? openSync(options.log, 'a') : undefined;
    const settings: Options = { reject: false, buffer: false, stdin: 'ignore', detached: this.lab.persistent };
    if (log !== undefined) Object.assign(settings, { stdout: log, stderr: log });
    const child = execa(...this.argv(command), settings);
    if (log !== undefined) closeSync(log);
    this.lab.track(child);
    return child;
  }

  /** Starts a command whose standard output is read line by line while it runs; see LineStream. */
  stream(command: string[]): LineStream {
    const child = execa(...this.argv(command), { reject: false, buffer: false, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' });
    this.lab.track(child);
    return new LineStream(child, `${command.join(' ')} in ${this.name}`);
  }
}

/**
 * A running process's output, line by line as it prints it: a test waits for the line it needs (an
 * event), not for a time. Ending its standard input is how e2e/probe.ts and e2e/load.ts are told to stop.
 */
export class LineStream {
  readonly lines: string[] = [];
  private readonly waiters = new Set<() => void>();
  private stderr = '';
  private exited = false;
  private readonly exit: Promise<void>;

  constructor(private readonly child: Child, private readonly description: string) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      this.lines.push(line);
      for (const wake of this.waiters) wake();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += String(chunk);
    });
    this.exit = new Promise<void>((resolve) => {
      // 'close' comes after the last line has been read.
      child.stdout!.once('close', () => {
        void child.then(() => {
          this.exited = true;
          for (const wake of this.waiters) wake();
          resolve();
        });
      });
    });
  }

  /**
   * The index of the first line at `from` or later that `match` accepts, once it has been printed.
   * With `within`, gives up (undefined) when that many lines after `from` did not match; rejects when
   * the process exits without printing one.
   */
  async waitFor(match: (line: string) => boolean, options: { from?: number; within?: number } = {}): Promise<number | undefined> {
    const from = options.from ?? 0;
    for (;;) {
      for (let index = from; index < this.lines.length; index++) {
        if (match(this.lines[index]!)) return index;
        if (options.within !== undefined && index - from + 1 >= options.within) return undefined;
      }
      if (this.exited) throw new Error(`${this.description} exited without the line it was waited for: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          resolve();
        };
        this.waiters.add(wake);
      });
    }
  }

  /** Ends the process's standard input and waits until it has exited; every line it printed. */
  async end(): Promise<string[]> {
    this.child.stdin?.end();
    await this.exit;
    return this.lines;
  }
}

const labs = new Set<Lab>();
// The safety net for a process that ends without its teardown (or is interrupted): delete what it created.
process.once('exit', () => {
  for (const lab of labs) lab.destroySync();
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const lab of labs) lab.destroySync();
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  });
}

/** All namespaces of one test run, named with a prefix unique to the run. */
export class Lab {
  readonly prefix = `f${randomBytes(3).toString('hex')}-`;
  private readonly namespaces: Namespace[] = [];
  private readonly children = new Set<Child>();
  private places: BpfPlaces | undefined;

  /** The run's eBPF places (cgroups and pin directories), made on first use and removed with the lab. */
  get bpf(): BpfPlaces {
    return (this.places ??= new BpfPlaces(this.prefix));
  }

  /** A persistent lab outlives its process (`npm run cluster -- up`); `npm run cluster -- down` removes it. */
  constructor(readonly persistent = false) {
    if (!persistent) labs.add(this);
  }

  /** Names of the namespaces created so far. */
  get names(): string[] {
    return this.namespaces.map((namespace) => namespace.name);
  }

  /** Creates namespace `prefix + role` with loopback up. */
  async namespace(role: string): Promise<Namespace> {
    const namespace = new Namespace(`${this.prefix}${role}`, this);
    await runChecked(execaRunner, 'creating a namespace', 'ip', ['netns', 'add', namespace.name]);
    this.namespaces.push(namespace);
    await namespace.run(['ip', 'link', 'set', 'lo', 'up']);
    return namespace;
  }

  /**
   * A veth pair with one end in each namespace. Both ends are created inside `a` and the peer moved
   * at once, so no interface ever exists in the root namespace.
   */
  async link(a: Namespace, aName: string, b: Namespace, bName: string): Promise<void> {
    await a.run(['ip', 'link', 'add', aName, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name]);
    await a.run(['ip', 'link', 'set', aName, 'up']);
    await b.run(['ip', 'link', 'set', bName, 'up']);
  }

  track(child: Child): void {
    if (this.persistent) {
      child.unref();
      return;
    }
    this.children.add(child);
    void child.finally(() => this.children.delete(child));
  }

  /** Kills every process and deletes every namespace of the run; never throws, safe to call twice. */
  async destroy(): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL');
    await Promise.allSettled([...this.children]);
    await deleteNamespaces(this.namespaces.splice(0).map((namespace) => namespace.name));
    await this.places?.remove();
    labs.delete(this);
  }

  destroySync(): void {
    for (const child of this.children) child.kill('SIGKILL');
    for (const namespace of this.namespaces.splice(0)) {
      try {
        execFileSync('ip', ['netns', 'del', namespace.name], { stdio: 'ignore' });
      } catch {
        // Already gone.
      }
    }
    this.places?.removeSync();
    labs.delete(this);
  }
}

/** Kills what still runs inside the namespaces, then deletes them; never throws. */
export async function deleteNamespaces(names: string[]): Promise<void> {
  for (const name of names) {
    const pids = await execaRunner.run('ip', ['netns', 'pids', name]);
    for (const pid of pids.stdout.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await execaRunner.run('ip', ['netns', 'del', name]);
  }
}
