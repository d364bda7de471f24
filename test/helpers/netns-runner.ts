// A throwaway named network namespace for kernel tests, and a Runner that runs ferry's commands inside it.
import type { ExecutionContext } from 'ava';
import { execaRunner, type Runner } from '../../dataplane/runner.js';
import { Lab } from '../../e2e/netns.js';

/**
 * A Runner that runs every command inside network namespace `name`, in this process's mount namespace
 * (nsenter, where `ip netns exec` would give it a /sys of its own): the eBPF backend's cgroup and pins,
 * which ferry finds here, must be where its commands look.
 */
export function runnerIn(name: string): Runner {
  const inside = (command: string, args: string[]) => [`--net=/run/netns/${name}`, '--', command, ...args];
  return {
    run: (command, args, input) => execaRunner.run('nsenter', inside(command, args), input),
    stream: (command, args, input) => execaRunner.stream!('nsenter', (file) => inside(command, args(file)), input),
  };
}

/**
 * Creates an empty namespace (loopback up) with a name unique to the run, deleted when the test ends,
 * also when it fails, with whatever still runs inside; e2e's Lab also deletes it when the worker exits
 * without its teardowns (a timeout, an interrupt).
 */
export async function throwawayNamespace(t: ExecutionContext): Promise<{ name: string; runner: Runner }> {
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const { name } = await lab.namespace('kernel');
  return { name, runner: runnerIn(name) };
}

/** A runner that records the argv of every command it runs, and what it gave each on standard input. */
export function recording(runner: Runner): { runner: Runner; commands: string[]; inputs: string[] } {
  const commands: string[] = [];
  const inputs: string[] = [];
  return {
    commands, inputs, runner: {
      run: (command, args, input) => {
        commands.push([command, ...args].join(' '));
        inputs.push(input ?? '');
        return runner.run(command, args, input);
      },
    },
  };
}
