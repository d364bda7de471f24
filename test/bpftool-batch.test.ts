import test from 'ava';
import { bpftoolBatch } from '../dataplane/ebpf/bpftool-batch.js';
import type { RunResult, Runner } from '../dataplane/runner.js';

/** A runner that records what it ran and answers `result`. */
function recording(result: RunResult = { exitCode: 0, stdout: '[]', stderr: '' }) {
  const ran: Array<{ command: string; args: string[]; input?: string }> = [];
  const runner: Runner = { run: async (command, args, input) => { ran.push({ command, args, input }); return result; } };
  return { ran, runner };
}

test('bpftool batch: the commands go to one bpftool, one per line, a path with a space quoted', async (t) => {
  const { ran, runner } = recording();
  await bpftoolBatch(runner, [
    { what: 'a', args: ['cgroup', 'attach', '/sys/fs/cgroup/my pods', 'connect4', 'pinned', '/sys/fs/bpf/p', 'multi'] },
    { what: 'b', args: ['prog', 'show', 'id', '7'] },
  ]);
  t.deepEqual(ran, [{ command: 'bpftool', args: ['-j', 'batch', 'file', '-'], input: "cgroup attach '/sys/fs/cgroup/my pods' connect4 pinned /sys/fs/bpf/p multi\nprog show id 7\n" }]);
});

test('bpftool batch: an argument no batch line can hold (a # or a quote) runs every command in a process of its own', async (t) => {
  const { ran, runner } = recording();
  await bpftoolBatch(runner, [{ what: 'a', args: ['prog', 'show', 'pinned', "/x/it's#1"] }, { what: 'b', args: ['version'] }]);
  t.deepEqual(ran.map(({ command, args, input }) => [command, args, input]), [['bpftool', ['prog', 'show', 'pinned', "/x/it's#1"], undefined], ['bpftool', ['version'], undefined]]);
});

test('bpftool batch: a failure names the command bpftool stopped at', async (t) => {
  const stdout = JSON.stringify([{ command: ['cgroup', 'attach', '/ok'], output: null }, { command: ['cgroup', 'attach', '/nope'], output: { error: "can't open cgroup /nope" } }]);
  const { runner } = recording({ exitCode: 255, stdout, stderr: '' });
  const error = await t.throwsAsync(bpftoolBatch(runner, [
    { what: 'attaching connect4', args: ['cgroup', 'attach', '/ok', 'connect4', 'pinned', '/p4'] },
    { what: 'attaching connect6', args: ['cgroup', 'attach', '/nope', 'connect6', 'pinned', '/p6'] },
  ]));
  t.regex(error!.message, /^attaching connect6: bpftool cgroup attach \/nope connect6 pinned \/p6 exited 255: can't open cgroup \/nope/);
});

test('bpftool batch: every command succeeded though bpftool says the batch failed (a leftover errno after the last): done', async (t) => {
  const stdout = JSON.stringify([{ command: ['prog', 'loadall', 'a'], output: null }, { command: ['prog', 'loadall', 'b'], output: null }, { error: 'reading batch file failed: File exists' }]);
  const { runner } = recording({ exitCode: 255, stdout, stderr: '' });
  await t.notThrowsAsync(bpftoolBatch(runner, [{ what: 'a', args: ['prog', 'loadall', 'a'] }, { what: 'b', args: ['prog', 'loadall', 'b'] }]));
  // One command short: it failed to run.
  const { runner: short } = recording({ exitCode: 255, stdout: JSON.stringify([{ command: ['prog', 'loadall', 'a'], output: null }, { error: 'reading batch file failed: File exists' }]), stderr: '' });
  await t.throwsAsync(bpftoolBatch(short, [{ what: 'a', args: ['prog', 'loadall', 'a'] }, { what: 'b', args: ['prog', 'loadall', 'b'] }]), { message: /^b: / });
});
