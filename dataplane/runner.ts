// The one door to the outside world for the dataplane: run a command, with its input given whole or streamed.
import { closeSync, constants, open as openCallback, openSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { promisify } from 'node:util';
import { execa, type Result } from 'execa';

/** What a finished command left behind. */
export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Runs commands; tests substitute one that records argv and stdin. */
export interface Runner {
  run(command: string, args: string[], input?: string): Promise<RunResult>;
  /**
   * Runs a command that reads a file named in its arguments (`args` is given the name) while `input`
   * produces it. When `input` throws, the command is killed before its input ends, and the error is
   * thrown: a program that acts on the end of its input (nft -f) never sees a truncated one end.
   * Undefined, having run nothing and read none of `input`, where it cannot stream (no writable
   * temporary directory). Optional: without it, or when it gives undefined, callers join the input.
   */
  stream?(command: string, args: (inputFile: string) => string[], input: AsyncIterable<string>): Promise<RunResult | undefined>;
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
    return resultOf(await subprocess.finally(() => running.delete(subprocess)));
  },
  stream: streamWithExeca,
};

function resultOf(result: Result): RunResult {
  if (result.failed && result.exitCode === undefined) {
    // The command could not be started at all (not installed, not executable), or was aborted.
    return { stdout: '', stderr: String(result.message), exitCode: 127 };
  }
  return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), exitCode: result.exitCode ?? 1 };
}

const openDescriptor = promisify(openCallback);

// Bytes queued between two turns of the event loop, in which the pipe takes what the command has read.
const STREAM_TURN_BYTES = 64 * 1024;
const STREAM_QUEUE_BYTES = 1024 * 1024;

/** Resolves once the socket has written what was queued, or has closed (the reader went away). */
function drained(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/**
 * The Runner.stream of execaRunner. The command reads a FIFO by its path (a program can open a FIFO
 * where it opens files, not the socket pair Node gives a child as its standard input). Once the
 * command has it open, an empty file takes the FIFO's name, so that opening the path again (nft does,
 * to quote the line of an error) finds the empty file instead of waiting for a writer that has gone.
 * The input is queued faster than the command reads it (ferry renders faster than nft parses), and
 * every 64 KB the event loop turns, so that the pipe stays full; past 1 MB queued it waits for the
 * queue to empty, so that a script of 14 MB is not copied into buffers whole while nft parses its start.
 */
async function streamWithExeca(command: string, args: (inputFile: string) => string[], input: AsyncIterable<string>): Promise<RunResult | undefined> {
  const directory = await mkdtemp(join(tmpdir(), 'ferry-stream-')).catch(() => undefined);
  if (!directory) return undefined;
  const fifo = join(directory, 'input');
  try {
    await execa('mkfifo', ['-m', '600', fifo], { env: { PATH: SYSTEM_PATH } });
    await writeFile(join(directory, 'read'), '', { mode: 0o600 });
    const subprocess = execa(command, args(fifo), { stdin: 'ignore', reject: false, stripFinalNewline: false, env: { PATH: SYSTEM_PATH }, cleanup: false });
    running.add(subprocess);
    try {
      // Opening a FIFO to write waits for its reader: off the main thread, and given up if the command
      // ends without opening it (then a reader of our own lets the open finish).
      const opening = openDescriptor(fifo, 'w');
      const ended = await Promise.race([opening.then(() => false), subprocess.then(() => true)]).catch((error: unknown) => {
        subprocess.kill('SIGKILL');
        throw error;
      });
      if (ended) {
        // Held open until our own open has returned: that open may reach the kernel only now (the
        // thread pool can be busy), and a writer that opens after the last reader closed waits forever.
        const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
        try {
          closeSync(await opening);
        } finally {
          closeSync(reader);
        }
        return resultOf(await subprocess);
      }
      // A plain descriptor, not a FileHandle (which closes its own when collected): the socket owns it.
      const pipe = new Socket({ fd: await opening, readable: false, writable: true });
      await rename(join(directory, 'read'), fifo);
      // A command that exits before the end of its input (nft refusing a line) leaves EPIPE: its exit code tells.
      let closed = false;
      pipe.on('error', () => (closed = true));
      try {
        let sinceTurn = 0;
        for await (const piece of input) {
          if (closed) break;
          pipe.write(piece);
          sinceTurn += piece.length;
          if (pipe.writableLength >= STREAM_QUEUE_BYTES) await drained(pipe);
          else if (sinceTurn >= STREAM_TURN_BYTES) {
            sinceTurn = 0;
            await setImmediate();
          }
        }
      } catch (error) {
        subprocess.kill('SIGKILL');
        await subprocess;
        pipe.destroy();
        throw error;
      }
      pipe.end();
      return resultOf(await subprocess);
    } finally {
      running.delete(subprocess);
    }
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

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
