import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { pino } from 'pino';
import { ManifestWatch } from '../controlplane/sources/manifest-watch.js';
import { serviceObject, sliceObject } from './helpers/objects.js';

test('a re-read manifests directory hands back unchanged objects as the same objects, changed ones anew', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'ferry-watch-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  const publish = async (items: object[]) => {
    await writeFile(join(directory, '.next'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    await rename(join(directory, '.next'), join(directory, 'cluster.json'));
  };
  const web = serviceObject();
  await publish([web, sliceObject('web', [{ ip: '10.244.1.9' }])]);
  const watch = new ManifestWatch(directory, pino({ level: 'silent' }));
  let changed!: () => void;
  const change = new Promise<void>((resolve) => (changed = resolve));
  await watch.start(() => changed());
  t.teardown(() => watch.stop());
  const [service, slice] = watch.objects();
  t.deepEqual(service, web);

  await publish([web, sliceObject('web', [{ ip: '10.244.1.9' }, { ip: '10.244.2.9' }])]);
  await change;
  const [serviceAfter, sliceAfter] = watch.objects();
  t.is(serviceAfter, service);
  t.not(sliceAfter, slice);
  t.is((sliceAfter as { endpoints: unknown[] }).endpoints.length, 2);
});
