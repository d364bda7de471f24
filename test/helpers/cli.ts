// Runs the ferry command as a user would (the compiled CLI through bin/ferry.js), optionally in a namespace.
import { join } from 'node:path';
import { execa } from 'execa';
import { packageRoot } from '../../controlplane/package-root.js';

const root = packageRoot();
const bin = join(root, 'bin', 'ferry.js');

/** Runs `ferry ARGS` from the repository root; inside namespace `netns` when given. Never throws. */
export async function ferry(args: string[], options: { netns?: string } = {}) {
  const command = options.netns ? ['ip', 'netns', 'exec', options.netns, process.execPath, bin, ...args] : [process.execPath, bin, ...args];
  const result = await execa(command[0]!, command.slice(1), { cwd: root, reject: false });
  return { stdout: String(result.stdout), stderr: String(result.stderr), exitCode: result.exitCode ?? -1 };
}
