// The Vagrant cluster as a ClusterDriver: the same scenarios, run through `vagrant ssh` against real
// k3s nodes with ferry (see Vagrantfile). Pods are real pods; nodes and external clients are VMs.
import { ZONE_LABEL } from '../controlplane/model/cluster-state.js';
import { stringify } from 'yaml';
import { runChecked, type Runner } from '../dataplane/runner.js';
import { externalPlan, nodePlan } from '../test/helpers/address-plan.js';
import type { ClusterDriver, EndpointPod, Host, NodeHost, PodHost, ProbeOptions, ProbeResult } from './driver.js';
import type { BackendName } from '../dataplane/backend-names.js';
import { endpointSliceObjects } from './manifests.js';
import type { PodSpec } from './cluster.js';

const E2E_LABEL = 'ferry-e2e';
const CONFIG = '/etc/ferry/kube-proxy.yaml';
const KUBECONFIG = '/etc/ferry/kubeconfig';
const SETTLE_TIMEOUT_MS = 60_000;

/** Quotes one word for the remote shell that `vagrant ssh -c` starts. */
const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;
const command = (words: string[]) => words.map(quote).join(' ');

export class VagrantCluster implements ClusterDriver {
  readonly nodes = new Map<string, NodeHost>();
  readonly pods = new Map<string, PodHost>();
  readonly externals: Host[] = [];
  private backend: BackendName | undefined;

  constructor(private readonly runner: Runner) {
    for (let index = 0; index < 3; index++) {
      const { name, ipv4, ipv6 } = nodePlan(index);
      this.nodes.set(name, { name, ipv4, ipv6 });
    }
    for (let index = 0; index < 2; index++) this.externals.push({ name: `ext-${index + 1}`, ...externalPlan(index) });
  }

  /** Labels the nodes with their zones, deploys the scenario pods (pinned to their nodes) and learns the addresses k3s gave them. */
  static async connect(runner: Runner, pods: PodSpec[], zones: Readonly<Record<string, string>> = {}): Promise<VagrantCluster> {
    const cluster = new VagrantCluster(runner);
    for (const [node, zone] of Object.entries(zones)) await cluster.kubectl(['label', 'node', node, `${ZONE_LABEL}=${zone}`, '--overwrite']);
    await cluster.kubectl(['apply', '-f', '-'], stringify({ apiVersion: 'v1', kind: 'List', items: pods.map(podObject) }));
    await cluster.kubectl(['wait', '--for=condition=Ready', 'pod', '-l', `${E2E_LABEL}=pod`, '--timeout=300s']);
    const list = JSON.parse(await cluster.kubectl(['get', 'pods', '-l', `${E2E_LABEL}=pod`, '-o', 'json'])) as {
      items: { metadata: { name: string }; spec: { nodeName: string }; status: { podIPs: { ip: string }[] } }[];
    };
    for (const item of list.items) {
      const ips = item.status.podIPs.map((entry) => entry.ip);
      const ipv4 = ips.find((ip) => !ip.includes(':')) ?? '';
      const ipv6 = ips.find((ip) => ip.includes(':')) ?? '';
      cluster.pods.set(item.metadata.name, { name: item.metadata.name, node: item.spec.nodeName, ipv4, ipv6 });
    }
    return cluster;
  }

  /** Runs a shell command line on a VM through `vagrant ssh`. */
  ssh(machine: string, line: string, input?: string): Promise<string> {
    return runChecked(this.runner, `on ${machine}`, 'vagrant', ['ssh', machine, '-c', line], input);
  }

  kubectl(args: string[], input?: string): Promise<string> {
    return this.ssh('node-a', command(['sudo', 'k3s', 'kubectl', ...args]), input);
  }

  /** Replaces the scenario's Services and EndpointSlices, then waits until every node's rules hold them. */
  async apply(objects: object[], backend: BackendName): Promise<void> {
    if (backend !== this.backend) await this.switchBackend(backend);
    const labelled = objects.map((object) => withLabel(object));
    await this.kubectl(['delete', 'services,endpointslices', '-l', `${E2E_LABEL}=service`, '--wait=true']);
    await this.kubectl(['apply', '-f', '-'], stringify({ apiVersion: 'v1', kind: 'List', items: labelled }));
    await this.settle(backend);
  }

  private async switchBackend(backend: BackendName): Promise<void> {
    for (const node of this.nodes.keys()) {
      const other = backend === 'nftables' ? 'iptables' : 'nftables';
      await this.ssh(node, [
        `sudo sed -i 's/^FERRY_BACKEND=.*/FERRY_BACKEND=${backend}/' /etc/ferry/ferry.env`,
        'sudo systemctl stop ferry',
        `sudo node /opt/ferry/bin/ferry.js cleanup --backend ${other}`,
        'sudo systemctl start ferry',
      ].join(' && '));
    }
    this.backend = backend;
  }

  /**
   * Polls `ferry diff` on every node until all exit 0, against what the API shows that node's ferry:
   * the objects listed with the kubeconfig ferry.service uses (deploy/vagrant/ferry.sh), on stdin.
   */
  private async settle(backend: BackendName): Promise<void> {
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    for (const node of this.nodes.keys()) {
      const line = [
        'set -o pipefail;',
        `sudo k3s kubectl --kubeconfig ${KUBECONFIG} get services,endpointslices,nodes,servicecidrs -A -o yaml`,
        `| sudo node /opt/ferry/bin/ferry.js diff --node ${node} --backend ${backend} --config ${CONFIG} -f - >/dev/null`,
      ].join(' ');
      while ((await this.runner.run('vagrant', ['ssh', node, '-c', line])).exitCode !== 0) {
        if (Date.now() > deadline) throw new Error(`${node}: ferry's rules did not match the cluster within ${SETTLE_TIMEOUT_MS} ms`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  async probe(from: Host, options: ProbeOptions): Promise<ProbeResult[]> {
    const args = ['--proto', options.proto, '--host', options.host, '--port', String(options.port), '--count', String(options.count ?? 1),
      '--timeout-ms', String(options.timeoutMs ?? 2000), '--hold-ms', String(options.holdMs ?? 0)];
    const output = this.pods.has(from.name)
      ? await this.kubectl(['exec', from.name, '--', 'node', '/ferry/e2e/probe.js', ...args])
      : await this.ssh(from.name, command(['node', '/opt/ferry/dist/e2e/probe.js', ...args]));
    return output.trim().split('\n').filter(Boolean).map((text) => JSON.parse(text) as ProbeResult);
  }

  endpointSlices(service: string, pods: EndpointPod[], ports: { name?: string; port: number; protocol?: string }[]): object[] {
    return endpointSliceObjects(this.pods, service, pods, ports);
  }

  async routeVia(external: Host, cidr: string, node: NodeHost): Promise<void> {
    const family = cidr.includes(':') ? ['-6'] : [];
    await this.ssh(external.name, command(['sudo', 'ip', ...family, 'route', 'replace', cidr, 'via', cidr.includes(':') ? node.ipv6 : node.ipv4]));
  }

  /** Removes the scenario objects and pods. */
  async destroy(): Promise<void> {
    await this.kubectl(['delete', 'services,endpointslices,pods', '-l', E2E_LABEL, '--wait=false']);
  }
}

// Hand-made EndpointSlices without the controller's managed-by label are left alone by the
// EndpointSlice controller, and Services without a selector get no slices of its own.
function withLabel(object: object): object {
  const metadata = (object as { metadata: { labels?: Record<string, string> } }).metadata;
  return { ...object, metadata: { ...metadata, labels: { ...metadata.labels, [E2E_LABEL]: 'service' } } };
}

/** A scenario pod: node:20-slim running ferry's echo server (or idling as a client) from the node's /opt/ferry. */
function podObject(spec: PodSpec): object {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: spec.name, namespace: 'default', labels: { [E2E_LABEL]: 'pod' } },
    spec: {
      nodeName: spec.node,
      containers: [{
        name: 'main', image: 'node:20-slim',
        command: spec.ports?.length ? ['node', '/ferry/e2e/echo-server.js', ...spec.ports.flatMap((port) => ['--port', String(port)])] : ['sleep', 'infinity'],
        volumeMounts: [{ name: 'ferry', mountPath: '/ferry', readOnly: true }],
      }],
      volumes: [{ name: 'ferry', hostPath: { path: '/opt/ferry/dist' } }],
    },
  };
}
