// Several bpftool commands in one process (`bpftool batch file -`): every process the agent starts is
// a fork of a process of hundreds of megabytes, and a full sync attaches nine socket programs.
import { DataplaneError, runChecked, type Runner } from '../runner.js';

// bpftool splits a batch line at whitespace, takes a word in quotes whole (no escapes inside) and
// drops everything after a '#'.
const PLAIN = /^[^\s'"#]+$/;
const quoted = (arg: string) => (PLAIN.test(arg) ? arg : /^[^'#\n]*$/.test(arg) ? `'${arg}'` : undefined);

/**
 * Runs `commands` (each bpftool's arguments, none printing anything but null in JSON) in order in one
 * bpftool, or one process each where an argument cannot be written on a batch line; `what` names each
 * command for an error. bpftool stops at the first that fails (those before it stay done, as with one
 * process each); the error names it.
 */
export async function bpftoolBatch(runner: Runner, commands: Array<{ what: string; args: string[] }>): Promise<void> {
  const lines = commands.map(({ args }) => args.map(quoted));
  if (lines.some((words) => words.includes(undefined))) {
    for (const { what, args } of commands) await runChecked(runner, what, 'bpftool', args);
    return;
  }
  const result = await runner.run('bpftool', ['-j', 'batch', 'file', '-'], `${lines.map((words) => words.join(' ')).join('\n')}\n`);
  if (result.exitCode === 0) return;
  // JSON: one {command, output} per command run, the failed one's output {error}. bpftool 7 also fails
  // a batch whose commands all succeeded when the last left errno set ("reading batch file failed:
  // File exists" after a loadall): every command's own output says it succeeded, and that counts.
  const reported = parsed(result.stdout);
  const ran = reported.filter((entry) => entry.command !== undefined);
  if (ran.length === commands.length && ran.every((entry) => entry.output?.error === undefined)) return;
  const at = ran.findIndex((entry) => entry.output?.error !== undefined);
  const failed = commands[at] ?? commands[ran.length] ?? commands[0]!;
  const message = ran[at]?.output?.error ?? reported.find((entry) => entry.error !== undefined)?.error;
  throw new DataplaneError(`bpftool ${failed.args.join(' ')}`, message ? { ...result, stderr: message } : result, failed.what);
}

function parsed(stdout: string): Array<{ command?: string[]; output?: { error?: string } | null; error?: string }> {
  try {
    const value = JSON.parse(stdout) as unknown;
    return Array.isArray(value) ? value : [];
  } catch {
    return [];
  }
}
