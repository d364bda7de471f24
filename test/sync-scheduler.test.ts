import test from 'ava';
import { SyncScheduler } from '../controlplane/agent/sync-scheduler.js';
import { ManualClock } from './helpers/manual-clock.js';

function scheduler(options: { fail?: () => boolean } = {}) {
  const clock = new ManualClock();
  const syncs: { at: number; full: boolean }[] = [];
  const s = new SyncScheduler(async (full) => {
    syncs.push({ at: clock.time, full });
    if (options.fail?.()) throw new Error('kernel said no');
  }, { minSyncPeriodMs: 1000, syncPeriodMs: 30_000, clock });
  return { clock, syncs, s };
}

test('the first sync is full and immediate', async (t) => {
  const { clock, syncs, s } = scheduler();
  s.start();
  await clock.advance(0);
  t.deepEqual(syncs, [{ at: 0, full: true }]);
});

test('a burst of changes is coalesced into one partial sync no sooner than minSyncPeriod', async (t) => {
  const { clock, syncs, s } = scheduler();
  s.start();
  await clock.advance(100);
  for (let i = 0; i < 50; i++) s.request();
  await clock.advance(2000);
  t.deepEqual(syncs, [{ at: 0, full: true }, { at: 1000, full: false }]);
});

test('a change long after the last sync is synced at once', async (t) => {
  const { clock, syncs, s } = scheduler();
  s.start();
  await clock.advance(5000);
  s.request();
  await clock.advance(0);
  t.deepEqual(syncs.at(-1), { at: 5000, full: false });
  t.is(s.pendingSince, undefined);
});

test('everything is resynced in full every syncPeriod, without any change', async (t) => {
  const { clock, syncs, s } = scheduler();
  s.start();
  await clock.advance(65_000);
  t.deepEqual(syncs, [{ at: 0, full: true }, { at: 30_000, full: true }, { at: 60_000, full: true }]);
});

test('a failed sync is retried with growing backoff, as a full sync, and the change stays pending', async (t) => {
  let failing = 3;
  const { clock, syncs, s } = scheduler({ fail: () => failing-- > 0 });
  s.start();
  await clock.advance(20_000);
  t.deepEqual(syncs.map((sync) => [sync.at, sync.full]), [[0, true], [2000, true], [6000, true], [14_000, true]]);
  s.request();
  t.is(s.pendingSince, 20_000);
  await clock.advance(0);
  t.is(s.pendingSince, undefined);
});

test('stop waits for the sync in progress and prevents further syncs', async (t) => {
  const { clock, syncs, s } = scheduler();
  s.start();
  await clock.advance(0);
  await s.stop();
  s.request();
  await clock.advance(60_000);
  t.is(syncs.length, 1);
});
