// npm run bench:balance — uniform vs least-busy on a Service with three endpoints, one four times
// slower (a quarter of the capacity), under an open-loop load; and the control case with equal
// endpoints. One node of the namespace cluster, ferry agent with --balancing, both backends.
// Writes docs/balancing.md.
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../controlplane/package-root.js';
import { Cluster } from '../e2e/cluster.js';
import { BACKEND_NAMES, type BackendName } from '../dataplane/backend-names.js';

const RATE = 240;
const SECONDS = 20;
const FAST_MS = 4;
const cases = { 'one slow endpoint': [FAST_MS, FAST_MS, 4 * FAST_MS], 'equal endpoints': [FAST_MS, FAST_MS, FAST_MS] };

interface Request { at: number; ms: number; server?: string; error?: string }

const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)] ?? NaN;

async function run(backend: BackendName, name: string, serviceMs: number[]) {
  const pods = serviceMs.map((_, index) => ({ name: `web-${index + 1}`, node: 'node-a' }));
  const cluster = await Cluster.create({ nodes: 1, pods: [...pods, { name: 'client', node: 'node-a' }] });
  try {
    for (const [index, pod] of pods.entries()) await cluster.startServer(cluster.pods.get(pod.name)!, [8080], { serialMs: serviceMs[index] });
    const objects = [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      ...cluster.endpointSlices('web', pods.map((pod) => pod.name), [{ name: 'http', port: 8080 }]),
    ];
    const node = cluster.nodes.get('node-a')!;
    const rows = [];
    for (const balancing of ['uniform', 'least-busy'] as const) {
      await cluster.stopAgent(node);
      await cluster.publish(objects);
      cluster.startAgent(node, backend, balancing);
      await cluster.settle(backend);
      const output = await cluster.pods.get('client')!.ns.run([process.execPath, join(packageRoot(), 'dist/e2e/load.js'), '--host', '10.96.0.20', '--port', '80', '--rate', String(RATE), '--seconds', String(SECONDS)]);
      const requests = output.trim().split('\n').map((line) => JSON.parse(line) as Request);
      const answered = requests.filter((request) => request.server);
      const slow = cluster.pods.get(pods.at(-1)!.name)!.ipv4;
      const shares = pods.map((pod) => answered.filter((request) => request.server === cluster.pods.get(pod.name)!.ipv4).length / answered.length);
      // Adaptation: the first second in which the last endpoint got at most 20 % of the new connections.
      let adapted: number | undefined;
      for (let second = 0; second < SECONDS && adapted === undefined; second++) {
        const window = answered.filter((request) => request.at >= second * 1000 && request.at < (second + 1) * 1000);
        if (window.length > 0 && window.filter((request) => request.server === slow).length / window.length <= 0.2) adapted = second;
      }
      rows.push({
        backend, name, balancing, requests: requests.length, failed: requests.length - answered.length,
        p50: percentile(answered.map((r) => r.ms), 50), p99: percentile(answered.map((r) => r.ms), 99), shares, adapted,
      });
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    return rows;
  } finally {
    await cluster.destroy();
  }
}

const rows: Awaited<ReturnType<typeof run>> = [];
for (const backend of BACKEND_NAMES) {
  for (const [name, serviceMs] of Object.entries(cases)) rows.push(...(await run(backend, name, serviceMs)));
}
const table = [
  '| backend | endpoints | balancing | p50 | p99 | share web-1 / web-2 / web-3 | slow share ≤ 20 % from second | failed |',
  '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) => `| ${r.backend} | ${r.name} | ${r.balancing} | ${r.p50.toFixed(1)} ms | ${r.p99.toFixed(1)} ms | ${r.shares.map((s) => `${(s * 100).toFixed(0)} %`).join(' / ')} | ${r.name === 'equal endpoints' ? 'n/a' : r.adapted ?? 'never'} | ${r.failed} of ${r.requests} |`),
].join('\n');
const ratios = BACKEND_NAMES.map((backend) => {
  const [uniform, leastBusy] = ['uniform', 'least-busy'].map((balancing) => rows.find((r) => r.backend === backend && r.name === 'one slow endpoint' && r.balancing === balancing)!);
  return `- ${backend}: p99 least-busy / uniform = ${(leastBusy!.p99 / uniform!.p99).toFixed(2)} (target at most 0.5)`;
}).join('\n');
const report = `# Load-aware endpoint choice: uniform vs least-busy

\`npm run bench:balance\` on ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}; one run.

One node of the namespace cluster runs \`ferry agent --balancing uniform|least-busy\` (samples conntrack
every 2 s, publishes weights at most every 5 s). A Service has three endpoints; each echo server has one
worker with a fixed service time (${FAST_MS} ms, so ${1000 / FAST_MS} connections/s; the slow one
${4 * FAST_MS} ms, a quarter of that). A client pod opens ${RATE} new connections per second for ${SECONDS} s,
open loop; latency is from connect to the answer. Uniform sends the slow endpoint ${RATE / 3}/s, more than
its ${1000 / (4 * FAST_MS)}/s, so its queue grows for the whole run.

${table}

${ratios}
`;
console.log(report);
await writeFile(join(packageRoot(), 'docs', 'balancing.md'), report);
