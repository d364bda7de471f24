// ava configuration for `npm run e2e:vagrant` only: the scenarios against the Vagrant cluster.
export default {
  files: ['e2e/vagrant.scenarios.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  timeout: '10m',
  concurrency: 1,
  workerThreads: false,
};
