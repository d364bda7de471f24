// What every eBPF kernel test works in: a cgroup under the cgroup2 mount and a bpffs of its own for the
// pins (e2e's BpfPlaces, one place per test), removed at the test's end and, the safety net when a
// worker exits without its teardowns (a timeout, an interrupt), synchronously at exit.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { ExecutionContext } from 'ava';
import { BpfPlaces, type BpfPlace } from '../../e2e/bpf-places.js';

const made: BpfPlaces[] = [];
process.once('exit', () => {
  for (const places of made) places.removeSync();
});

/**
 * A cgroup and a pin directory on a bpffs of this test's own; at the test's end the cgroup's programs
 * are detached, it and the bpffs (with the pins) removed.
 */
export async function bpfWorkspace(t: ExecutionContext): Promise<BpfPlace> {
  const places = new BpfPlaces(`${randomBytes(4).toString('hex')}-`);
  made.push(places);
  // Registered first, so that it runs however far the set-up got.
  t.teardown(() => places.remove());
  return places.place('test');
}

/** What the tests made and is still there: empty once every teardown ran. */
export function leftovers(): string[] {
  return made.flatMap((places) => [places.root, places.bpffs]).filter((path) => existsSync(path));
}
