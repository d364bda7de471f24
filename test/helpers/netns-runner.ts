// A throwaway named network namespace for kernel tests, and a Runner that runs ferry's commands inside it.
import { randomBytes } from 'node:crypto';
import type { ExecutionContext } from 'ava';
import { execaRunner, runChecked, type Runner } from '../../dataplane/runner.js';

/** A Runner that runs every command inside network namespace `name` (ip netns exec). */
export function runnerIn(name: string): Runner {
  return { run: (command, args, input) => execaRunner.run('ip', ['netns', 'exec', name, command, ...args], input) };
}

/** Creates an empty namespace with a unique name, deleted when the test ends, also when it fails. */
export async function throwawayNamespace(t: ExecutionContext): Promise<{ name: string; runner: Runner }> {
  const name = `ferryk-${randomBytes(4).toString('hex')}`;
  await runChecked(execaRunner, 'creating a test namespace failed', 'ip', ['netns', 'add', name]);
  t.teardown(async () => {
    await execaRunner.run('ip', ['netns', 'del', name]);
  });
  return { name, runner: runnerIn(name) };
}
