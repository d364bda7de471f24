// Measures the map writer on the real slots map: 100,000 slot entries in one batch update, one dump,
// one batch delete, and the round trip of a one-entry update. Loads the programs into a bpffs it
// mounts itself under a fresh temporary directory (nothing is attached), and removes everything after.
//   node dist/dataplane/ebpf/measure-map-writer.js [--entries N]
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execaRunner, runChecked } from '../runner.js';
import { MAPS } from './layout.js';
import { MapWriter } from './map-writer.js';
import { mountBpffs } from './placement.js';
import { loadSocketPrograms, unloadSocketPrograms } from './programs.js';

const { values } = parseArgs({ options: { entries: { type: 'string', default: '100000' } } });
const entries = Number(values.entries);
const directory = join(tmpdir(), `ferryk-${randomBytes(4).toString('hex')}`);
const bpffs = join(directory, 'bpffs');
const pinDir = join(bpffs, 'ferry');

const time = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
  const started = performance.now();
  const result = await work();
  console.log(`${what}: ${(performance.now() - started).toFixed(1)} ms`);
  return result;
};

const mounted = await mountBpffs(bpffs, execaRunner);
let writer: MapWriter | undefined;
try {
  const programs = await time('compile (cached) and load', () => loadSocketPrograms({ pinDir, cgroup: '/sys/fs/cgroup/unified' }));
  writer = await time('start the writer', () => MapWriter.start());
  const slots = await writer.open(MAPS.slots, programs.maps.slots);
  const batch = Array.from({ length: entries }, (_, index) => [{ group: index >> 4, index: index & 15 }, { ip: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`, port: 8080, cumulative: (index & 15) + 1 }] as const);
  await time(`encode ${entries} slots alone (no writer)`, async () => batch.map(([key, value]) => [MAPS.slots.key.encode(key).toString('hex'), MAPS.slots.value.encode(value).toString('hex')]));
  await time(`update ${entries} slots (one batch, encoding included)`, () => writer!.update(slots, batch));
  const dumped = await time(`dump (${entries} entries, decoding included)`, () => writer!.dump(slots));
  if (dumped.length !== entries) throw new Error(`dumped ${dumped.length} entries, wrote ${entries}`);
  await time(`update the same ${entries} again (replace)`, () => writer!.update(slots, batch));
  await time(`delete ${entries} (one batch)`, () => writer!.delete(slots, batch.map(([key]) => key)));
  const rounds = 1000;
  await time(`${rounds} one-entry updates, one after another`, async () => {
    for (let round = 0; round < rounds; round++) await writer!.update(slots, [batch[round]!]);
  });
} finally {
  await writer?.close();
  await unloadSocketPrograms(pinDir);
  if (mounted) await runChecked(execaRunner, 'unmounting', 'umount', [bpffs]);
  await rm(directory, { recursive: true, force: true });
}
