// iptables at N Services (default 5,000) × 10 endpoints: the rules loaded straight into a namespace of
// this run's own (iptables-restore, the kernel alone), then the agent's periodic full resync over them
// (reassertRules: iptables-save, then a restore of what differs), twice. Not part of `npm run bench`:
// the load alone takes about 18 minutes at 5,000 here. Writes docs/iptables-resync.md.
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { computeFromIndex, type ComputeConfig } from '../controlplane/compute/compute.js';
import { ClusterStore } from '../controlplane/model/cluster-store.js';
import { reassertRules } from '../dataplane/dataplane.js';
import { render } from '../dataplane/render.js';
import { execaRunner, runChecked } from '../dataplane/runner.js';
import { packageRoot } from '../controlplane/package-root.js';
import { ownNetworkNamespace } from './own-namespace.js';
import { syntheticCluster } from './synthetic.js';

ownNetworkNamespace(import.meta.url);
const services = Number(process.argv[2] ?? 5000);
const config: ComputeConfig = { clusterCIDRs: ['10.244.0.0/16'], detectLocalMode: 'ClusterCIDR', nodePortAddresses: { kind: 'primary' }, masqueradeBit: 14, masqueradeAll: false };
const store = new ClusterStore('node-0');
store.replaceAll(syntheticCluster({ services, endpoints: 10 }));
const rendered = render(computeFromIndex(store.take().index, 'node-0', config), 'iptables');

let started = performance.now();
for (const part of rendered.texts) await runChecked(execaRunner, 'loading the rules', part.family === 'IPv4' ? 'iptables-restore' : 'ip6tables-restore', ['--noflush'], part.text);
const loadMs = performance.now() - started;
const resyncs: number[] = [];
for (let round = 0; round < 2; round++) {
  started = performance.now();
  await reassertRules(execaRunner, rendered);
  resyncs.push(performance.now() - started);
}
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const report = `# iptables: the periodic full resync at ${services.toLocaleString('en')} Services

\`npm run bench:iptables-resync\` (\`bench/iptables-resync.ts\`, not part of \`npm run bench\`: the first load alone
takes a quarter of an hour at 5,000), ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, Node ${process.version}, one run.

- ${services.toLocaleString('en')} Services × 10 endpoints loaded straight into a namespace of the run's own with
  \`iptables-restore\` (the kernel alone, iptables-nft's userspace, which grows with the square of the chains): ${seconds(loadMs)}.
- The agent's periodic full resync over them (\`reassertRules\`: \`iptables-save\` of both families, then a
  restore of what differs, here nothing), twice: **${resyncs.map(seconds).join(' and ')}**, against the default \`syncPeriod\` of 30 s.
`;
console.log(report);
await writeFile(join(packageRoot(), 'docs', 'iptables-resync.md'), report);
