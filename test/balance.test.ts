import test from 'ava';
import fc from 'fast-check';
import { balance, defaultBalanceConfig, initialBalanceState } from '../controlplane/balance/balance.js';
import { simulate } from './helpers/queue-sim.js';

const samples = (entries: [string, number][]) => new Map(entries);

test('equal load gives equal weights, and idle endpoints keep the default weight 1', (t) => {
  const idle = balance(samples([['a', 0], ['b', 0]]), [['a', 'b']], initialBalanceState, 0);
  t.false(idle.changed);
  t.deepEqual([...idle.weights], []);
  const busy = balance(samples([['a', 7], ['b', 7], ['c', 7]]), [['a', 'b', 'c']], initialBalanceState, 0);
  t.false(busy.changed, 'equally busy endpoints all keep weight 1');
  fc.assert(fc.property(fc.nat(1000), fc.integer({ min: 1, max: 10 }), (load, count) => {
    const keys = Array.from({ length: count }, (_, i) => `e${i}`);
    const state = balance(new Map(keys.map((key) => [key, load])), [keys], initialBalanceState, 0);
    return new Set(Array.from({ length: count }, (_, i) => state.weights.get(`e${i}`) ?? 1)).size === 1;
  }));
});

test('a busier endpoint gets a smaller weight, never below the floor', (t) => {
  const keys = ['idle', 'some', 'busy', 'swamped'];
  const state = balance(samples([['idle', 0], ['some', 1], ['busy', 500], ['swamped', 1000]]), [keys], initialBalanceState, 0);
  const weight = (key: string) => state.weights.get(key) ?? 1;
  t.is(weight('idle'), 1);
  t.is(weight('some'), 1, 'below the mean');
  t.true(weight('busy') < 1 && weight('busy') > weight('swamped'));
  const many = Array.from({ length: 20 }, (_, i) => `e${i}`);
  const floored = balance(new Map(many.map((key, i) => [key, i === 0 ? 10_000 : 0])), [many], initialBalanceState, 0);
  t.is(floored.weights.get('e0'), defaultBalanceConfig.floor);
});

test('one burst is smoothed: the load moves only part of the way towards a new sample', (t) => {
  const first = balance(samples([['a', 0]]), [['a']], initialBalanceState, 0);
  const second = balance(samples([['a', 10]]), [['a']], first, 10_000);
  t.is(second.loads.get('a'), 10 * defaultBalanceConfig.smoothing);
});

test('an endpoint shared by two groups takes its smallest weight', (t) => {
  const state = balance(samples([['shared', 10], ['quiet', 0], ['loud', 30]]), [['shared', 'quiet'], ['shared', 'loud']], initialBalanceState, 0);
  t.true((state.weights.get('shared') ?? 1) < 1, 'busy next to a quiet peer');
  t.true((state.weights.get('loud') ?? 1) < 1);
});

test('small changes do not rewrite rules (hysteresis), and weights change at most once per interval', (t) => {
  const group = [['a', 'b']];
  const first = balance(samples([['a', 8], ['b', 0]]), group, initialBalanceState, 0);
  t.true(first.changed);
  const config = { ...defaultBalanceConfig, smoothing: 1 };
  const nudged = balance(samples([['a', 8.8], ['b', 0]]), group, first, 10_000, config);
  t.false(nudged.changed, 'a 10% change stays below the 20% hysteresis');
  const tooSoon = balance(samples([['a', 0], ['b', 0]]), group, first, 1000, config);
  t.false(tooSoon.changed, 'within minIntervalMs the published weights stay');
  t.is(tooSoon.weights, first.weights);
});

test('GIVEN one endpoint four times slower WHEN the queueing model runs THEN least-busy waits far less than uniform', (t) => {
  const run = (policy: 'uniform' | 'least-busy') => simulate({ serviceMs: [10, 10, 40], ratePerSecond: 120, seconds: 120, policy });
  const uniform = run('uniform');
  const leastBusy = run('least-busy');
  t.log(`mean wait uniform ${uniform.meanWaitMs.toFixed(1)} ms, least-busy ${leastBusy.meanWaitMs.toFixed(1)} ms; slow share ${(leastBusy.shares[2]! * 100).toFixed(1)} %`);
  t.true(leastBusy.meanWaitMs < 0.5 * uniform.meanWaitMs);
  t.true(leastBusy.p99WaitMs < 0.5 * uniform.p99WaitMs);
  t.true(leastBusy.shares[2]! < 0.25, 'the slow endpoint gets less than its uniform third');
  t.true(leastBusy.shares[2]! > 0.02, 'but the floor keeps it in use');
  // Stable: after the first 30 s the slow endpoint's weight stays in a narrow band, with few rewrites.
  const settled = leastBusy.weightHistory.slice(30).map((weights) => weights[2]!);
  t.true(Math.max(...settled) - Math.min(...settled) <= 0.3, `slow weight ranged ${Math.min(...settled)}..${Math.max(...settled)}`);
  t.true(leastBusy.publications <= 120 / (defaultBalanceConfig.minIntervalMs / 1000));
});

test('GIVEN equal endpoints WHEN the queueing model runs THEN least-busy is no worse than uniform', (t) => {
  const run = (policy: 'uniform' | 'least-busy') => simulate({ serviceMs: [10, 10, 10], ratePerSecond: 200, seconds: 120, policy });
  const uniform = run('uniform');
  const leastBusy = run('least-busy');
  t.log(`mean wait uniform ${uniform.meanWaitMs.toFixed(2)} ms, least-busy ${leastBusy.meanWaitMs.toFixed(2)} ms`);
  t.true(leastBusy.meanWaitMs <= uniform.meanWaitMs * 1.15);
  for (const share of leastBusy.shares) t.true(Math.abs(share - 1 / 3) < 0.05);
});
