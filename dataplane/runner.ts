// The one door to the outside world for the dataplane: run a command, optionally with stdin.
import { execa } from 'execa';

/** What a finished command left behind. */
export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Runs commands; tests substitute one that records argv and stdin. */
export interface Runner {
  run(command: string, args: string[], input?: string): Promise<RunResult>;
}

/** A command failed: keeps the command, its exit code and its stderr for the operator. */
export class DataplaneError extends Error {
  constructor(readonly command: string, readonly result: RunResult, what: string) {
    super(`${what}: ${command} exited ${result.exitCode}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
}

// The system tools, never a same-named npm binary: npm puts node_modules/.bin (which has an unrelated
// `nft`) first on PATH when ferry runs from an npm script.
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// Commands in flight, so that a stopping agent can end them before it exits (abortCommands).
const running = new Set<ReturnType<typeof execa>>();

/** Runs commands with execa, never through a shell, and reports failures as results, not throws. */
export const execaRunner: Runner = {
  async run(command, args, input) {
    // cleanup: false, because execa's exit hook (signal-exit) re-raises SIGTERM when it counts as many
    // of its own subscribers as there are listeners, killing ferry mid-sync instead of letting it stop.
    const subprocess = execa(command, args, {
      input: input ?? '', reject: false, stripFinalNewline: false, env: { PATH: SYSTEM_PATH }, cleanup: false,
    });
    running.add(subprocess);
    const result = await subprocess.finally(() => running.delete(subprocess));
    if (result.failed && result.exitCode === undefined) {
      // The command could not be started at all (not installed, not executable), or was aborted.
      return { stdout: '', stderr: String(result.message), exitCode: 127 };
    }
    return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), exitCode: result.exitCode ?? 1 };
  },
};

/**
 * Kills every command still running, before ferry exits in the middle of a sync. Exiting alone would
 * close `nft -f -`'s standard input early, and nft would commit the truncated script it read; killed,
 * it commits nothing, or (if it had already sent its batch) the whole transaction: the kernel keeps
 * either the old rules or the new ones.
 */
export function abortCommands(): number {
  for (const subprocess of running) subprocess.kill('SIGKILL');
  return running.size;
}

/** Runs a command and throws a DataplaneError unless it exits 0. */
export async function runChecked(runner: Runner, what: string, command: string, args: string[], input?: string): Promise<string> {
  const result = await runner.run(command, args, input);
  if (result.exitCode !== 0) throw new DataplaneError([command, ...args].join(' '), result, what);
  return result.stdout;
}

/** Runs a command in a new, empty network namespace that disappears with the command. */
export function inThrowawayNamespace(command: string, args: string[]): [string, string[]] {
  return ['unshare', ['--net', '--', command, ...args]];
}

/**
 * runChecked in a throwaway network namespace (inThrowawayNamespace). When the namespace itself could
 * not be made, the error says so, not `what` (which names the command's own failure, such as the
 * kernel rejecting rules): unshare needs CAP_SYS_ADMIN.
 */
export async function runInThrowawayNamespace(runner: Runner, what: string, command: string, args: string[], input?: string): Promise<string> {
  const [unshare, unshareArgs] = inThrowawayNamespace(command, args);
  const result = await runner.run(unshare, unshareArgs, input);
  if (result.exitCode === 0) return result.stdout;
  const namespaceFailed = /^unshare: /m.test(result.stderr);
  throw new DataplaneError([unshare, ...unshareArgs].join(' '), result, namespaceFailed ? 'a throwaway network namespace could not be made (unshare needs CAP_SYS_ADMIN)' : what);
}
