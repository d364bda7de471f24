import { readFile } from 'node:fs/promises';
import test from 'ava';
import { parse } from 'yaml';
import type { Runner, RunResult } from '../dataplane/runner.js';
import { clusterSpec } from '../e2e/scenarios.js';
import { VagrantCluster } from '../e2e/vagrant.js';

// Vagrant cannot run here: these tests pin down the commands the Vagrant driver sends, with a fake runner.
function recordingRunner(answer: (args: string[], input?: string) => Partial<RunResult> = () => ({})) {
  const calls: { args: string[]; input?: string }[] = [];
  const runner: Runner = {
    async run(command, args, input) {
      calls.push({ args: [command, ...args], input });
      return { stdout: '', stderr: '', exitCode: 0, ...answer(args, input) };
    },
  };
  return { runner, calls };
}

const podList = JSON.stringify({
  items: clusterSpec.pods.map((pod, index) => ({
    metadata: { name: pod.name }, spec: { nodeName: pod.node }, status: { podIPs: [{ ip: `10.244.0.${index + 2}` }, { ip: `fd00:244::${index + 2}` }] },
  })),
});

async function connected() {
  const recorder = recordingRunner((args) => (args.at(-1)?.includes("'get' 'pods'") ? { stdout: podList } : {}));
  const cluster = await VagrantCluster.connect(recorder.runner, clusterSpec.pods);
  return { cluster, ...recorder };
}

test('connecting deploys the scenario pods pinned to their nodes and learns their addresses', async (t) => {
  const { cluster, calls } = await connected();
  t.deepEqual(calls[0]!.args, ['vagrant', 'ssh', 'node-a', '-c', "'sudo' 'k3s' 'kubectl' 'apply' '-f' '-'"]);
  const pods = parse(calls[0]!.input!).items as { metadata: { name: string }; spec: { nodeName: string; containers: { command: string[] }[] } }[];
  t.deepEqual(pods.map((pod) => [pod.metadata.name, pod.spec.nodeName]), clusterSpec.pods.map((pod) => [pod.name, pod.node]));
  t.deepEqual(pods[0]!.spec.containers[0]!.command, ['node', '/ferry/e2e/echo-server.js', '--port', '8080']);
  t.deepEqual(cluster.pods.get('web-2'), { name: 'web-2', node: 'node-b', ipv4: '10.244.0.3', ipv6: 'fd00:244::3' });
});

test('apply switches the backend on every node, replaces the labelled objects and waits for ferry diff to agree', async (t) => {
  const { cluster, calls } = await connected();
  calls.length = 0;
  await cluster.apply([{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: {} }], 'iptables');
  const lines = calls.map((call) => call.args.slice(2).join(' '));
  t.true(lines.slice(0, 3).every((line) => /FERRY_BACKEND=iptables\/' \/etc\/ferry\/ferry\.env && sudo systemctl stop ferry && .*cleanup --backend nftables && sudo systemctl start ferry/.test(line)), lines.slice(0, 3).join('\n'));
  t.true(lines.some((line) => line.includes("'delete' 'services,endpointslices' '-l' 'ferry-e2e=service'")));
  const applied = calls.find((call) => call.input?.includes('kind: Service'))!;
  t.is(parse(applied.input!).items[0].metadata.labels['ferry-e2e'], 'service');
  const diffs = lines.filter((line) => line.includes('ferry.js diff --node'));
  t.is(diffs.length, 3, 'one successful diff per node');
  // What the node's ferry sees: the API through ferry.service's kubeconfig (written by deploy/vagrant/ferry.sh), on stdin.
  t.regex(diffs[1]!, /^node-b -c set -o pipefail; sudo k3s kubectl --kubeconfig \/etc\/ferry\/kubeconfig get services,endpointslices,nodes,servicecidrs -A -o yaml \| sudo node \/opt\/ferry\/bin\/ferry\.js diff --node node-b --backend iptables --config \/etc\/ferry\/kube-proxy\.yaml -f - >\/dev\/null$/);
  calls.length = 0;
  await cluster.apply([], 'iptables');
  t.false(calls.some((call) => call.args.join(' ').includes('FERRY_BACKEND=')), 'the backend is switched only when it changes');
});

test('probes run in the pod through kubectl exec, on VMs through vagrant ssh', async (t) => {
  const { cluster, calls } = await connected();
  calls.length = 0;
  await cluster.probe(cluster.pods.get('client-a')!, { proto: 'udp', host: '10.96.1.10', port: 53, count: 3 });
  await cluster.probe(cluster.externals[1]!, { proto: 'tcp', host: '192.168.56.12', port: 30080 });
  t.regex(calls[0]!.args.at(-1)!, /^'sudo' 'k3s' 'kubectl' 'exec' 'client-a' '--' 'node' '\/ferry\/e2e\/probe\.js' '--proto' 'udp' '--host' '10\.96\.1\.10' '--port' '53' '--count' '3'/);
  t.deepEqual(calls[1]!.args.slice(0, 3), ['vagrant', 'ssh', 'ext-2']);
  t.regex(calls[1]!.args.at(-1)!, /^'node' '\/opt\/ferry\/dist\/e2e\/probe\.js' '--proto' 'tcp'/);
});

test('the driver uses the files the provisioning writes on every node', async (t) => {
  const provisioning = await readFile('deploy/vagrant/ferry.sh', 'utf8');
  for (const path of ['/etc/ferry/kubeconfig', '/etc/ferry/kube-proxy.yaml', '/etc/ferry/ferry.env', '/opt/ferry/']) t.true(provisioning.includes(path), path);
  t.regex(provisioning, /printf 'FERRY_NODE=%s\\nFERRY_BACKEND=nftables\\n'/, 'the FERRY_BACKEND= line the driver rewrites');
});

test('routes of external clients are replaced through vagrant ssh, per family', async (t) => {
  const { cluster, calls } = await connected();
  calls.length = 0;
  await cluster.routeVia(cluster.externals[0]!, 'fd00:198::/64', cluster.nodes.get('node-c')!);
  t.deepEqual(calls[0]!.args, ['vagrant', 'ssh', 'ext-1', '-c', "'sudo' 'ip' '-6' 'route' 'replace' 'fd00:198::/64' 'via' 'fd00:56::13'"]);
});
