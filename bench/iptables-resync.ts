// iptables at N Services (default 5,000) × 10 endpoints: the rules loaded straight into a namespace of
// this run's own (iptables-restore, the kernel alone), then the agent's periodic full resync over them
// (reassertRules: iptables-save, then a restore of what differs), twice. Not part of `npm run bench`:
// the load alone takes about 18 minutes at 5,000 here. Prints one JSON line per measurement.
import { computeFromIndex, type ComputeConfig } from '../controlplane/compute/compute.js';
import { ClusterStore } from '../controlplane/model/cluster-store.js';
import { reassertRules } from '../dataplane/dataplane.js';
import { render } from '../dataplane/render.js';
import { execaRunner, runChecked } from '../dataplane/runner.js';
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
console.log(JSON.stringify({ services, loadMs: Math.round(performance.now() - started) }));
for (let round = 0; round < 2; round++) {
  started = performance.now();
  await reassertRules(execaRunner, rendered);
  console.log(JSON.stringify({ services, resyncMs: Math.round(performance.now() - started) }));
}
