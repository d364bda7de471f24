// `npm run e2e:vagrant`: the e2e scenarios against the Vagrant cluster (vagrant up first), both backends.
import { execaRunner } from '../dataplane/runner.js';
import { clusterSpec } from './scenarios.js';
import { registerScenarios } from './suite.js';
import { VagrantCluster } from './vagrant.js';
import { BACKEND_NAMES } from '../dataplane/backend-names.js';

for (const backend of BACKEND_NAMES) {
  registerScenarios(backend, () => VagrantCluster.connect(execaRunner, clusterSpec.pods));
}
