import test from 'ava';
import { DataplaneError, runInThrowawayNamespace, type Runner } from '../dataplane/runner.js';

const answering = (stderr: string, exitCode = 1): Runner => ({ run: async () => ({ stdout: '', stderr, exitCode }) });

test('a throwaway namespace that cannot be made is named as such, not as the command\'s own failure', async (t) => {
  const error = await t.throwsAsync(runInThrowawayNamespace(answering('unshare: unshare failed: Operation not permitted\n'), 'the kernel rejected the nftables rules', 'nft', ['-f', '-'], ''), { instanceOf: DataplaneError });
  t.regex(error!.message, /^a throwaway network namespace could not be made \(unshare needs CAP_SYS_ADMIN\): unshare --net -- nft -f - exited 1: unshare: unshare failed/);
});

test('the command\'s own failure inside the namespace keeps its description; success gives its output', async (t) => {
  const error = await t.throwsAsync(runInThrowawayNamespace(answering('/dev/stdin:3:1-5: Error: syntax error\n'), 'the kernel rejected the nftables rules', 'nft', ['-f', '-'], ''));
  t.regex(error!.message, /^the kernel rejected the nftables rules: unshare --net -- nft -f - exited 1/);
  const calls: string[][] = [];
  const ok: Runner = { run: async (command, args) => (calls.push([command, ...args]), { stdout: 'listed', stderr: '', exitCode: 0 }) };
  t.is(await runInThrowawayNamespace(ok, 'x', 'nft', ['list', 'ruleset']), 'listed');
  t.deepEqual(calls, [['unshare', '--net', '--', 'nft', 'list', 'ruleset']]);
});
