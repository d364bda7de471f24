// `npm run e2e:vagrant`: the e2e scenarios against the Vagrant cluster (vagrant up first), for the rule
// backends: the box (debian/bookworm64) runs Linux 6.1, and the eBPF packet program needs the conntrack
// NAT kfunc of 6.2 and later (bpf_ct_set_nat_info).
import { execaRunner } from '../dataplane/runner.js';
import { clusterSpec } from './scenarios.js';
import { registerScenarios } from './suite.js';
import { VagrantCluster } from './vagrant.js';
import { BACKEND_NAMES } from '../dataplane/backend-names.js';

for (const backend of BACKEND_NAMES.filter((name) => name !== 'ebpf')) {
  registerScenarios(backend, () => VagrantCluster.connect(execaRunner, clusterSpec.pods, clusterSpec.zones));
}
