// ava configuration for `npm run test:k3s` only: the informer source against K3s in a container.
export default {
  files: ['e2e/k3s.k3s.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  timeout: '5m',
  workerThreads: false,
};
