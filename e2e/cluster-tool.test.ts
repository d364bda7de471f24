import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { BpfPlaces } from './bpf-places.js';
import { packageRoot } from '../controlplane/package-root.js';
import { deleteNamespaces } from './netns.js';

const run = (args: string[], env: Record<string, string>) =>
  execa(process.execPath, [join(packageRoot(), 'dist/e2e/cluster-cli.js'), ...args], { env, reject: false, timeout: 60_000 });

test('kernel: npm run cluster -- up, status and down work as documented and leave nothing behind', async (t) => {
  const state = await mkdtemp(join(tmpdir(), 'ferry-cluster-'));
  const env = { FERRY_CLUSTER_STATE: join(state, 'state.json') };
  const up = await run(['up', '--backend', 'iptables'], env);
  const prefix = /Namespaces start with (\S+)\./.exec(String(up.stdout))?.[1];
  t.teardown(async () => {
    await run(['down'], env);
    const left = (await execa('ip', ['netns', 'list'])).stdout.split('\n').map((line) => line.split(' ')[0]!).filter((name) => prefix && name.startsWith(prefix));
    await deleteNamespaces(left);
    await rm(state, { recursive: true, force: true });
  });
  t.is(up.exitCode, 0, String(up.stderr));
  t.truthy(prefix);
  t.regex(String(up.stdout), new RegExp(`sudo ip netns exec ${prefix}client-a bash`));

  const status = await run(['status'], env);
  t.regex(String(status.stdout), new RegExp(`${prefix}node-b +up, ferry rules loaded`));

  // The probe printed by `up` works as printed.
  const probe = await execa('ip', ['netns', 'exec', `${prefix}client-a`, process.execPath, join(packageRoot(), 'dist/e2e/probe.js'), '--host', '10.96.1.10', '--port', '80']);
  t.regex(String(probe.stdout), /"ok":true/);

  const down = await run(['down'], env);
  t.is(down.exitCode, 0);
  const left = (await execa('ip', ['netns', 'list'])).stdout;
  t.notRegex(left, new RegExp(prefix!));
  const places = new BpfPlaces(prefix!);
  t.false(existsSync(places.root), 'the nodes\' eBPF cgroups are gone');
  t.notRegex(await readFile('/proc/self/mountinfo', 'utf8'), new RegExp(places.bpffs), 'and their bpffs');
  t.regex(String((await run(['status'], env)).stdout), /no cluster is up/);
});
