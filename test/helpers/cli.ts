// Runs the ferry command as a user would (the compiled CLI through bin/ferry.js), optionally in a namespace.
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = fileURLToPath(new URL('../../bin/ferry.js', import.meta.url));

/** Runs `ferry ARGS` from the repository root; inside namespace `netns` when given. Never throws. */
export async function ferry(args: string[], options: { netns?: string } = {}) {
  const command = options.netns ? ['ip', 'netns', 'exec', options.netns, process.execPath, bin, ...args] : [process.execPath, bin, ...args];
  const result = await execa(command[0]!, command.slice(1), { cwd: root, reject: false });
  return { stdout: String(result.stdout), stderr: String(result.stderr), exitCode: result.exitCode ?? -1 };
}
