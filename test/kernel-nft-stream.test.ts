import { scrypt } from 'node:crypto';
import test from 'ava';
import { applyIfChanged, compareRules } from '../dataplane/dataplane.js';
import { renderNftables, renderNftablesStreaming } from '../dataplane/nftables/render.js';
import { applyNftablesStreamed, readStamps, rulesStamp } from '../dataplane/nftables/shell.js';
import { execaRunner, runChecked } from '../dataplane/runner.js';
import { renderScenario, scenarios } from './helpers/golden.js';
import { throwawayNamespace } from './helpers/netns-runner.js';

// A first load streams the script to nft while it renders (renderNftablesStreaming, Runner.stream): the
// same text as `ferry render`, the same rendering, and nothing committed unless the script ends.

test('the streamed script is the rendered one, piece by piece, and its rendering the same', async (t) => {
  for (const scenario of Object.keys(scenarios)) {
    const { rules } = await renderScenario(scenario, 'nftables');
    const whole = renderNftables(rules);
    const stream = renderNftablesStreaming(rules);
    t.throws(() => stream.rendered(), { message: /not read to its end/ }, 'no rendering before the script is printed');
    const pieces = [...stream.pieces];
    t.true(pieces.length > rules.families.length * 3, `${scenario}: printed in pieces`);
    t.is(pieces.join(''), whole.texts[0]!.text, scenario);
    t.deepEqual(rulesStamp(stream.rendered()), rulesStamp(whole), `${scenario}: the same stamp`);
    t.is(stream.rendered().texts[0]!.text, whole.texts[0]!.text);
    t.is(stream.rendered(), stream.rendered(), 'one rendering, whose id a later update names');
  }
});

const TABLE = 'table ip streamed {\n\tchain c {\n\t\tcounter\n\t}\n}\n';

async function* pieces(count: number, fail?: Error): AsyncGenerator<string> {
  for (let index = 0; index < count; index += 1) yield TABLE.replace('chain c', `chain c${index}`);
  if (fail) throw fail;
}

const tables = async (runner: Parameters<typeof runChecked>[0]) => runChecked(runner, 'list', 'nft', ['list', 'tables']);

test('kernel: a streamed script that ends is committed; one whose input fails is not, though what came before was whole', async (t) => {
  const { runner } = await throwawayNamespace(t);
  t.truthy(runner.stream, 'the namespace runner streams');
  // 4,000 chains: far more than a pipe holds, so nft has read and parsed most of it when the input fails.
  await t.throwsAsync(applyNftablesStreamed(runner, pieces(4000, new Error('render failed'))), { message: 'render failed' });
  t.notRegex(await tables(runner), /streamed/, 'nft was killed before its input ended: nothing committed');
  await applyNftablesStreamed(runner, pieces(4000));
  t.regex(await tables(runner), /table ip streamed/, 'the same pieces, ended, are committed');
  t.is((await runChecked(runner, 'chains', 'nft', ['list', 'chains', 'ip'])).match(/chain c\d+/g)?.length, 4000);
});

test('kernel: nft refusing a streamed script half-way is an error naming it, not a stall', async (t) => {
  const { runner } = await throwawayNamespace(t);
  async function* broken(): AsyncGenerator<string> {
    yield* pieces(100);
    yield 'this is not nft\n';
    // More than a pipe holds after the error (nft quotes the line of an error by opening its file again).
    for (let line = 0; line < 20_000; line += 1) yield `# ${'filler '.repeat(10)}\n`;
  }
  const error = await t.throwsAsync(applyNftablesStreamed(runner, broken()));
  t.regex(error!.message, /the kernel rejected the nftables rules; the previous rules stay: nft -f \(streamed\) exited 1: .*syntax error/s);
  t.notRegex(await tables(runner), /streamed/);
});

test('kernel: apply into a namespace without ferry\'s tables streams the script, stamped, and the kernel holds the rules', async (t) => {
  const { runner } = await throwawayNamespace(t);
  const { rules } = await renderScenario('default', 'nftables');
  const outcome = await applyIfChanged(runner, rules, 'nftables');
  t.true(outcome.changed);
  t.is(outcome.added, rulesStamp(outcome.rendered).lines);
  const { current, desired } = await compareRules(runner, outcome.rendered);
  t.is(current, desired);
  t.deepEqual([...(await readStamps(runner)).values()].map((stamp) => stamp?.digest), [rulesStamp(outcome.rendered).digest, rulesStamp(outcome.rendered).digest]);
  t.false((await applyIfChanged(runner, rules, 'nftables')).changed, 'the stamp it wrote is found');
});

test('a streamed command that ends without opening its input returns its exit code, not a stall', async (t) => {
  const result = await execaRunner.stream!('sh', (file) => ['-c', 'echo gone >&2; exit 3', file], pieces(10_000));
  t.deepEqual([result?.exitCode, result?.stderr.trim()], [3, 'gone']);
});

test.serial('kernel: without a writable temporary directory the runner streams nothing, and the script goes whole', async (t) => {
  const { runner } = await throwawayNamespace(t);
  const tmpdir = process.env.TMPDIR;
  process.env.TMPDIR = '/proc/ferry-not-writable';
  try {
    t.is(await runner.stream!('nft', (file) => ['-f', file], pieces(1)), undefined);
    await applyNftablesStreamed(runner, pieces(3));
  } finally {
    if (tmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = tmpdir;
  }
  t.is((await runChecked(runner, 'chains', 'nft', ['list', 'chains', 'ip'])).match(/chain c\d+/g)?.length, 3);
});

test('a streamed command that ends without opening its input while the thread pool is busy returns, not a stall', async (t) => {
  // The runner's own open of the FIFO waits for a thread of the pool; with the pool kept busy, it reaches
  // the kernel only after the command has ended, and must still find a reader there.
  let done = false;
  const hash = () => new Promise<void>((resolve, reject) => scrypt('x', 'y', 64, { N: 2 ** 14, r: 8, p: 1 }, (error) => (error ? reject(error) : resolve())));
  const busy = Array.from({ length: 8 }, async () => {
    while (!done) await hash();
  });
  const result = await Promise.race([
    execaRunner.stream!('true', () => [], (async function* nothing() {
      yield 'x\n';
    })()),
    new Promise<'stalled'>((resolve) => setTimeout(resolve, 20_000, 'stalled')),
  ]);
  done = true;
  await Promise.all(busy);
  t.not(result, 'stalled');
  t.is(result === 'stalled' ? undefined : result?.exitCode, 0);
});
