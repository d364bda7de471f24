import test from 'ava';
import fc from 'fast-check';
import { Counts } from '../dataplane/nftables/counts.js';

// A model: a plain Map of counts, copied at each step. Every version of Counts must keep answering as
// its own model does, after later versions were made from it (a failed apply goes back to one).
test('nft counts: every version keeps its own counts while later ones are made from it, across folds', (t) => {
  const key = fc.integer({ min: 0, max: 300 }).map((n) => `10.0.${n >> 8}.${n & 255} . 10.0.${n >> 8}.${n & 255}`);
  fc.assert(fc.property(fc.array(key, { maxLength: 60 }), fc.array(fc.array(fc.tuple(key, fc.boolean()), { minLength: 5, maxLength: 30 }), { minLength: 10, maxLength: 40 }), (start, steps) => {
    const model = new Map<string, number>();
    for (const k of start) model.set(k, (model.get(k) ?? 0) + 1);
    const versions: [Counts, Map<string, number>][] = [[Counts.of(start), new Map(model)]];
    for (const step of steps) {
      const [counts, before] = versions.at(-1)!;
      const after = new Map(before);
      const deltas: [string, number][] = [];
      // A removal only of what is held, as a port's part leaves only what it put in.
      for (const [k, add] of step) {
        const delta = add || (after.get(k) ?? 0) === 0 ? 1 : -1;
        after.set(k, (after.get(k) ?? 0) + delta);
        deltas.push([k, delta]);
      }
      versions.push([counts.with(deltas), after]);
    }
    for (const [counts, expected] of versions) {
      const held = [...expected].filter(([, n]) => n > 0).map(([k]) => k).sort();
      t.deepEqual([...counts.keys()].sort(), held);
      t.is(counts.size, held.length);
      for (const [k, n] of expected) t.is(counts.get(k), n, k);
    }
  }), { numRuns: 300 });
});

test('nft counts: a count below zero is an error, not a key held -1 times', (t) => {
  t.throws(() => Counts.of(['a']).with([['a', -1], ['a', -1]]), { message: /a counted below zero/ });
});
