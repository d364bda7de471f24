// `npm run cluster -- up|down|status`: the e2e namespace cluster as a tool for exploring ferry by hand.
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Command, Option } from 'commander';
import { execaRunner } from '../dataplane/runner.js';
import { Cluster } from './cluster.js';
import { deleteNamespaces } from './netns.js';
import { clusterSpec } from './scenarios.js';
import { BpfPlaces } from './bpf-places.js';
import { BACKEND_NAMES, DEFAULT_BACKEND, type BackendName } from '../dataplane/backend-names.js';

// FERRY_CLUSTER_STATE lets a test keep its own cluster apart from one a person brought up.
const STATE = process.env.FERRY_CLUSTER_STATE ?? '/run/ferry-e2e-cluster.json';

interface State {
  prefix: string;
  namespaces: string[];
  directory: string;
  backend: BackendName;
}

// A demo Service over the three web pods: ClusterIP 10.96.1.10 and node ports 30080 (TCP), 30053 (UDP).
function demoServices(cluster: Cluster): object[] {
  return [
    {
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' },
      spec: {
        type: 'NodePort', clusterIP: '10.96.1.10', clusterIPs: ['10.96.1.10', 'fd00:96::1:10'], ipFamilies: ['IPv4', 'IPv6'],
        ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30080 }, { name: 'dns', port: 53, protocol: 'UDP', targetPort: 8080, nodePort: 30053 }],
      },
    },
    ...cluster.endpointSlices('web', ['web-1', 'web-2', 'web-3'], [{ name: 'http', port: 8080 }, { name: 'dns', port: 8080, protocol: 'UDP' }]),
  ];
}

async function readState(): Promise<State | undefined> {
  return existsSync(STATE) ? (JSON.parse(await readFile(STATE, 'utf8')) as State) : undefined;
}

async function up(options: { backend: BackendName }): Promise<void> {
  if (await readState()) throw new Error(`a cluster is already up (${STATE}); run: npm run cluster -- down`);
  const cluster = await Cluster.create(clusterSpec, { persistent: true });
  try {
    await cluster.apply(demoServices(cluster), options.backend);
  } catch (error) {
    await cluster.destroy();
    throw error;
  }
  await writeFile(STATE, JSON.stringify({ prefix: cluster.lab.prefix, namespaces: cluster.lab.names, directory: cluster.directory, backend: options.backend } satisfies State));
  const p = cluster.lab.prefix;
  console.log(`A ${cluster.nodes.size}-node cluster is up (${options.backend}). Namespaces start with ${p}.

Nodes (fabric 192.168.56.0/24):
${[...cluster.nodes.values()].map((node) => `  ${node.name.padEnd(9)} ${node.ipv4.padEnd(15)} sudo ip netns exec ${p}${node.name} bash`).join('\n')}
Pods:
${[...cluster.pods.values()].map((pod) => `  ${pod.name.padEnd(9)} ${pod.ipv4.padEnd(15)} on ${pod.node}   sudo ip netns exec ${p}${pod.name} bash`).join('\n')}
External clients:
${cluster.externals.map((host) => `  ${host.name.padEnd(9)} ${host.ipv4.padEnd(15)} sudo ip netns exec ${p}${host.name} bash`).join('\n')}

Service default/web: cluster IP 10.96.1.10 (and fd00:96::1:10) port 80/TCP and 53/UDP, node ports 30080/30053.
Try:
  sudo ip netns exec ${p}client-a node dist/e2e/probe.js --host 10.96.1.10 --port 80 --count 5
  sudo ip netns exec ${p}ext-1 node dist/e2e/probe.js --host 192.168.56.12 --port 30080
  sudo ip netns exec ${p}node-a nft list table ip ferry
Every node runs \`ferry agent\` watching ${dirname(cluster.manifestsPath)} (logs: ${cluster.directory}/agent-NODE.log).
Edit ${cluster.manifestsPath} (write a new file and rename it over the old one) and the agents apply the change.
Or apply by hand on one node:
  sudo ip netns exec ${p}node-a node bin/ferry.js apply --node node-a -f ${cluster.manifestsPath} --config ${cluster.configPath} --backend ${options.backend}
When done: npm run cluster -- down`);
}

async function status(): Promise<void> {
  const state = await readState();
  if (!state) {
    console.log('no cluster is up');
    return;
  }
  const existing = new Set((await execaRunner.run('ip', ['netns', 'list'])).stdout.split('\n').map((line) => line.split(' ')[0]));
  console.log(`cluster ${state.prefix} (${state.backend}), manifests in ${state.directory}`);
  for (const name of state.namespaces) {
    const rules = name.includes('node-')
      ? state.backend === 'nftables'
        ? (await execaRunner.run('ip', ['netns', 'exec', name, 'nft', 'list', 'tables'])).stdout.includes('ferry')
        : (await execaRunner.run('ip', ['netns', 'exec', name, 'iptables-save'])).stdout.includes('FERRY-')
      : undefined;
    console.log(`  ${name.padEnd(20)} ${existing.has(name) ? 'up' : 'missing'}${rules === undefined ? '' : rules ? ', ferry rules loaded' : ', no ferry rules'}`);
  }
}

async function down(): Promise<void> {
  const state = await readState();
  if (!state) {
    console.log('no cluster is up');
    return;
  }
  await deleteNamespaces(state.namespaces);
  // The nodes' eBPF cgroups and pins (e2e/bpf-places.ts), named after the prefix.
  await new BpfPlaces(state.prefix).remove();
  await rm(state.directory, { recursive: true, force: true });
  await rm(STATE, { force: true });
  console.log(`cluster ${state.prefix} removed`);
}

const program = new Command('cluster').description('A ferry test cluster built from network namespaces (needs root).');
program.command('up').description('build a 3-node cluster, run ferry on every node, print how to enter each host')
  .addOption(new Option('--backend <backend>', 'rule backend').choices(BACKEND_NAMES).default(DEFAULT_BACKEND))
  .action(up);
program.command('status').description('show the namespaces of the cluster that is up').action(status);
program.command('down').description('remove the cluster: processes, namespaces, files').action(down);
try {
  await program.parseAsync(process.argv);
} catch (error) {
  console.error(`cluster: ${(error as Error).message}`);
  process.exitCode = 1;
}
