import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { packageRoot } from '../controlplane/package-root.js';
import { parseManifest } from '../controlplane/sources/manifests.js';
import { Cluster } from '../e2e/cluster.js';
import type { ProbeResult } from '../e2e/driver.js';
import { BACKEND_NAMES } from '../dataplane/backend-names.js';
import { ferry } from './helpers/cli.js';

// API-valid-but-untidy Services (test/fixtures/untidy-services.yaml): rendered with a warning for each
// thing that did not read, and every part that did serves real connections.
const FIXTURE = join(packageRoot(), 'test/fixtures/untidy-services.yaml');
const untidy = async () => parseManifest(await readFile(FIXTURE, 'utf8'), FIXTURE) as object[];
const servers = (results: ProbeResult[]) => [...new Set(results.map((result) => result.server ?? `failed: ${result.error}`))].sort();

test('the untidy Services render with a warning for each entry skipped, naming object, field and value', async (t) => {
  const { stdout, stderr, exitCode } = await ferry(['render', '--node', 'node-a', '-f', 'examples/cluster.yaml', '-f', FIXTURE]);
  t.is(exitCode, 0, stderr);
  const warnings = stderr.split('\n').filter((line) => line.includes('one-bad-entry'));
  t.true(warnings.some((line) => line.includes('spec.externalIPs[1]') && line.includes('"not-an-address"') && line.includes('ignored')), stderr);
  t.true(warnings.some((line) => line.includes('spec.ports[1].name') && line.includes('"bad name"')), stderr);
  t.notRegex(stderr, /padded|zeros/, 'whitespace and leading zeros read without a warning');
  for (const address of ['203.0.113.40', '198.51.100.40', '10.96.0.41', '203.0.113.42']) t.regex(stdout, new RegExp(`\\b${address.replaceAll('.', '\\.')} \\.`), address);
  t.regex(stdout, /ip saddr 192\.168\.57\.0\/24 return/);
  t.notRegex(stdout, /not-an-address|bad name/);
});

for (const backend of BACKEND_NAMES) {
  test(`kernel: ${backend}: the untidy Services serve real connections where they read, and a load-balancer IP's own address passes its source ranges when they admit the node`, async (t) => {
    const cluster = await Cluster.create({
      nodes: 1, externalClients: 1,
      pods: [{ name: 'web-1', node: 'node-a', ports: [8080] }, { name: 'client', node: 'node-a' }],
    });
    t.teardown(() => cluster.destroy());
    const slices = (service: string) => cluster.endpointSlices(service, ['web-1'], [{ name: 'http', port: 8080 }]);
    await cluster.applyWithCli([...await untidy(), ...slices('padded'), ...slices('zeros'), ...slices('one-bad-entry')], backend);
    const client = cluster.pods.get('client')!;
    const web = cluster.pods.get('web-1')!.ipv4;
    for (const host of ['10.96.0.40', '10.96.0.41', '10.96.0.42', '203.0.113.40', '203.0.113.42']) {
      t.deepEqual(servers(await cluster.probe(client, { proto: 'tcp', host, port: 80, count: 3 })), [web], host);
    }

    // The exception kube-proxy makes: a VIP-style load balancer's address is local on the node, so the
    // node's own request to it has that address as its source; the ranges admit the node (192.168.56.0/24),
    // so the load-balancer IP is an allowed source too. (eBPF: the node's own connect to a ranged
    // load-balancer IP is left to the packet path, which loopback does not have; see the README.)
    if (backend === 'ebpf') return;
    const node = cluster.nodes.get('node-a')!;
    await node.ns.run(['ip', 'address', 'add', '198.51.100.40/32', 'dev', 'lo']);
    t.deepEqual(servers(await cluster.probe(node, { proto: 'tcp', host: '198.51.100.40', port: 80, count: 3 })), [web], 'from the load-balancer IP itself');
  });
}
