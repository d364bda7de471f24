// A Kubernetes-shaped cluster built from network namespaces: nodes on a shared fabric, pods behind a
// bridge on each node, external clients; and the manifests that describe it, from one description.
import { watch } from 'node:fs';
import { mkdir, mkdtemp, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { externalPlan, nodePlan, plan } from '../test/helpers/address-plan.js';
import { packageRoot } from '../controlplane/package-root.js';
import { ZONE_LABEL } from '../controlplane/model/cluster-state.js';
import type { ClusterDriver, EndpointPod, HeldConnection, Host, NodeHost, PodHost, ProbeOptions, ProbeResult } from './driver.js';
import type { BackendName } from '../dataplane/backend-names.js';
import type { BackendOptions } from '../dataplane/backend.js';
import type { TraceAnswer } from '../controlplane/trace/trace.js';
import { endpointDestination } from '../dataplane/render-shapes.js';
import { endpointSliceObjects } from './manifests.js';
import type { BpfPlace } from './bpf-places.js';
import { Lab, type Child, type LineStream, type Namespace } from './netns.js';

/** A pod: where it runs and which ports its echo server answers on (none: a plain client). */
export interface PodSpec {
  name: string;
  node: string;
  ports?: number[];
}

/** The cluster to build. Nodes are named node-a, node-b, ... */
export interface ClusterSpec {
  nodes?: number;
  pods?: PodSpec[];
  externalClients?: number;
  /** Each node's topology.kubernetes.io/zone label, by node name. */
  zones?: Readonly<Record<string, string>>;
}

/** A host of the namespace cluster: its addresses and the namespace it lives in. */
interface InNamespace {
  ns: Namespace;
}
export type NamespaceHost = Host & InNamespace;
export type NamespaceNode = NodeHost & InNamespace & { index: number; podCIDR: { ipv4: string; ipv6: string }; place: BpfPlace };
export type NamespacePod = PodHost & InNamespace & { ports: number[] };

// The helper scripts run compiled (npm test builds first): starting them through tsx costs too much.
const script = (file: string) => join(packageRoot(), 'dist', 'e2e', file);
const ferryBin = () => join(packageRoot(), 'bin', 'ferry.js');

/**
 * How long `settle` waits for the agents at most. It waits for events (a sync in the agent's log, then
 * `ferry diff` exiting 0), so this only bounds a hang; on a busy 2-core machine an agent's start (node,
 * the CLI's modules, the first sync's kernel comparison) has taken more than 20 s.
 */
export const SETTLE_TIMEOUT_MS = 90_000;

/** A line of an agent's log (pino JSON): `time` is Unix ms. */
export interface AgentLogEntry {
  time: number;
  msg: string;
  [field: string]: unknown;
}

/** An agent finished a sync, successfully ("synced", debug level) or not. */
export const isSyncOutcome = (entry: AgentLogEntry) => entry.msg === 'synced' || entry.msg.startsWith('sync failed');

/** The kube-proxy configuration every node's ferry runs with. */
export const clusterConfig = [
  'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
  'kind: KubeProxyConfiguration',
  `clusterCIDR: ${plan.clusterCIDR.ipv4},${plan.clusterCIDR.ipv6}`,
  '',
].join('\n');

/** The namespace cluster; see ClusterDriver for what scenarios use. */
export class Cluster implements ClusterDriver {
  readonly nodes = new Map<string, NamespaceNode>();
  readonly pods = new Map<string, NamespacePod>();
  readonly externals: NamespaceHost[] = [];
  private readonly agents = new Map<string, Child>();
  private agentBackend: BackendName | undefined;
  private zones: Readonly<Record<string, string>> = {};
  /** The manifests text last published, to know whether a publish changed anything. */
  private published: string | undefined;
  /** Where the manifests and the kube-proxy config for every node's ferry are written. */
  directory = '';

  private constructor(readonly lab: Lab) {}

  /** Builds the whole topology; on any failure everything created so far is removed. */
  static async create(spec: ClusterSpec, options: { persistent?: boolean } = {}): Promise<Cluster> {
    const cluster = new Cluster(new Lab(options.persistent));
    try {
      await cluster.build(spec);
      return cluster;
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
  }

  private async build(spec: ClusterSpec): Promise<void> {
    this.zones = spec.zones ?? {};
    this.directory = await mkdtemp(join(tmpdir(), `${this.lab.prefix}manifests-`));
    await writeFile(this.configPath, clusterConfig);
    const fabric = await this.lab.namespace('fabric');
    await fabric.run(['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    await fabric.run(['ip', 'link', 'set', 'br0', 'up']);

    for (let index = 0; index < (spec.nodes ?? 3); index++) {
      const addresses = nodePlan(index);
      const ns = await this.lab.namespace(addresses.name);
      await this.lab.link(ns, 'eth0', fabric, addresses.name);
      await fabric.run(['ip', 'link', 'set', addresses.name, 'master', 'br0']);
      await addAddresses(ns, 'eth0', `${addresses.ipv4}/24`, `${addresses.ipv6}/64`);
      await ns.run(['ip', 'link', 'add', 'cbr0', 'type', 'bridge']);
      await ns.run(['ip', 'link', 'set', 'cbr0', 'up']);
      await addAddresses(ns, 'cbr0', `${addresses.gateway.ipv4}/24`, `${addresses.gateway.ipv6}/64`);
      await ns.run(['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
      // The eBPF backend's cgroup and pins for this node: the node's processes and its pods' run in the
      // cgroup (as a real node's all run below the cgroup2 root); the other backends ignore both.
      const place = await this.lab.bpf.place(addresses.name);
      ns.cgroup = place.cgroup;
      this.nodes.set(addresses.name, { name: addresses.name, ns, index, ipv4: addresses.ipv4, ipv6: addresses.ipv6, podCIDR: addresses.podCIDR, place });
    }
    for (let index = 0; index < (spec.externalClients ?? 1); index++) {
      const addresses = externalPlan(index);
      const name = `ext-${index + 1}`;
      const ns = await this.lab.namespace(name);
      await this.lab.link(ns, 'eth0', fabric, name);
      await fabric.run(['ip', 'link', 'set', name, 'master', 'br0']);
      await addAddresses(ns, 'eth0', `${addresses.ipv4}/24`, `${addresses.ipv6}/64`);
      this.externals.push({ name, ns, ...addresses });
    }
    await this.route();
    const perNode = new Map<string, number>();
    for (const pod of spec.pods ?? []) await this.addPod(pod, perNode);
  }

  /** Node routes to each other's pod CIDRs; a default route via the first external client, as a node has a gateway. */
  private async route(): Promise<void> {
    for (const node of this.nodes.values()) {
      for (const other of this.nodes.values()) {
        if (other === node) continue;
        await node.ns.run(['ip', 'route', 'add', other.podCIDR.ipv4, 'via', other.ipv4]);
        await node.ns.run(['ip', '-6', 'route', 'add', other.podCIDR.ipv6, 'via', other.ipv6]);
      }
      const gateway = this.externals[0];
      if (gateway) {
        await node.ns.run(['ip', 'route', 'add', 'default', 'via', gateway.ipv4]);
        await node.ns.run(['ip', '-6', 'route', 'add', 'default', 'via', gateway.ipv6]);
      }
    }
    // Outside the cluster, service and external addresses are routed to the first node, as a router would.
    const first = [...this.nodes.values()][0]!;
    for (const external of this.externals) {
      for (const family of ['ipv4', 'ipv6'] as const) {
        for (const cidr of [plan.serviceCIDR[family], plan.clusterCIDR[family], plan.externalIPs[family], plan.loadBalancerIPs[family]]) {
          await external.ns.run(['ip', ...(family === 'ipv6' ? ['-6'] : []), 'route', 'add', cidr, 'via', first[family]]);
        }
      }
    }
  }

  /** Points an external client's route for `cidr` at another node. */
  async routeVia(external: Host, cidr: string, node: NodeHost): Promise<void> {
    const family = cidr.includes(':') ? 'ipv6' : 'ipv4';
    await this.host(external).ns.run(['ip', ...(family === 'ipv6' ? ['-6'] : []), 'route', 'replace', cidr, 'via', node[family]]);
  }

  private async addPod(spec: PodSpec, perNode: Map<string, number>): Promise<void> {
    const node = this.nodes.get(spec.node);
    if (!node) throw new Error(`pod ${spec.name}: no node ${spec.node}`);
    const k = perNode.get(spec.node) ?? 0;
    perNode.set(spec.node, k + 1);
    const addresses = nodePlan(node.index);
    const { ipv4, ipv6 } = addresses.pod(k);
    const ns = await this.lab.namespace(spec.name);
    ns.cgroup = node.place.cgroup;
    const hostSide = `veth${k}`;
    await this.lab.link(ns, 'eth0', node.ns, hostSide);
    await node.ns.run(['ip', 'link', 'set', hostSide, 'master', 'cbr0']);
    // As kubelet's hairpin mode: a pod that reaches itself through a Service gets its packets back.
    await node.ns.run(['ip', 'link', 'set', hostSide, 'type', 'bridge_slave', 'hairpin', 'on']);
    await addAddresses(ns, 'eth0', `${ipv4}/24`, `${ipv6}/64`);
    await ns.run(['ip', 'route', 'add', 'default', 'via', addresses.gateway.ipv4]);
    await ns.run(['ip', '-6', 'route', 'add', 'default', 'via', addresses.gateway.ipv6]);
    const pod: NamespacePod = { name: spec.name, ns, node: spec.node, ipv4, ipv6, ports: spec.ports ?? [] };
    this.pods.set(spec.name, pod);
    if (pod.ports.length > 0) await this.startServer(pod, pod.ports);
  }

  /** Starts an echo server on a host (a pod's, or one a test adds) and waits until it listens. */
  async startServer(host: NamespaceHost, ports: number[], options: { delayMs?: number; serialMs?: number } = {}): Promise<void> {
    const child = host.ns.spawn([process.execPath, script('echo-server.js'), ...ports.flatMap((port) => ['--port', String(port)]),
      '--delay-ms', String(options.delayMs ?? 0), '--serial-ms', String(options.serialMs ?? 0)]);
    await new Promise<void>((resolve, reject) => {
      let output = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        output += String(chunk);
        if (output.includes('ready')) resolve();
      });
      void child.then((result) => reject(new Error(`echo server in ${host.name} exited: ${String(result.stderr ?? '')}`)));
    });
    // A persistent cluster's servers outlive this process: let go of their pipes.
    if (this.lab.persistent) for (const stream of [child.stdout, child.stderr]) stream?.destroy();
  }

  /** Opens `count` connections from a namespace and returns what each saw. */
  async probe(from: Host, options: ProbeOptions): Promise<ProbeResult[]> {
    const output = await this.host(from).ns.run(probeCommand(options, String(options.count ?? 1), String(options.holdMs ?? 0)));
    return output.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as ProbeResult);
  }

  /** Connections (or datagrams) that keep coming from a namespace, one after another, until stopped. */
  flow(from: Host, options: ProbeOptions): Flow {
    return new Flow(this.host(from).ns.stream(probeCommand(options, '0', '0')));
  }

  /** One TCP connection, held open from once it is established until it is released. */
  async holdOpen(from: Host, options: ProbeOptions): Promise<HeldConnection> {
    const stream = this.host(from).ns.stream(probeCommand({ ...options, proto: 'tcp' }, '1', 'stdin'));
    const holding = await stream.waitFor(() => true);
    if (!(JSON.parse(stream.lines[holding!]!) as { holding?: boolean }).holding) {
      throw new Error(`the connection to ${options.host} did not stay open: ${stream.lines[holding!]}`);
    }
    return { release: async () => JSON.parse((await stream.end()).at(-1)!) as ProbeResult };
  }

  /** The Node objects of the cluster, as the API would hold them. */
  nodeObjects(): object[] {
    return [...this.nodes.values()].map((node) => ({
      apiVersion: 'v1', kind: 'Node', metadata: { name: node.name, ...(this.zones[node.name] ? { labels: { [ZONE_LABEL]: this.zones[node.name] } } : {}) },
      spec: { podCIDR: node.podCIDR.ipv4, podCIDRs: [node.podCIDR.ipv4, node.podCIDR.ipv6] },
      status: { addresses: [{ type: 'InternalIP', address: node.ipv4 }, { type: 'InternalIP', address: node.ipv6 }, { type: 'Hostname', address: node.name }] },
    }));
  }

  endpointSlices(service: string, pods: EndpointPod[], ports: { name?: string; port: number; protocol?: string }[]): object[] {
    return endpointSliceObjects(this.pods, service, pods, ports);
  }

  /** Writes the manifests (Nodes plus the given objects) where every node's ferry reads them. */
  async writeManifests(objects: object[]): Promise<string> {
    const path = join(this.directory, 'cluster.yaml');
    await writeFile(path, this.manifestsText(objects));
    return path;
  }

  private manifestsText(objects: object[]): string {
    return stringify({ apiVersion: 'v1', kind: 'List', items: [...this.nodeObjects(), ...objects] });
  }

  /** The namespace host behind a host a scenario holds. */
  private host(host: Host): NamespaceHost {
    const found = this.nodes.get(host.name) ?? this.pods.get(host.name) ?? this.externals.find((external) => external.name === host.name);
    if (!found) throw new Error(`no host ${host.name} in this cluster`);
    return found;
  }

  /** Where the node's eBPF programs go, for ferry's library called from a test (the CLI gets the flags). */
  backendOptions(node: NamespaceNode): BackendOptions {
    return { ebpf: { cgroupRoot: node.place.cgroup, bpfRoot: node.place.pinDir } };
  }

  /** Runs the ferry CLI inside a node, as an operator would on that node. */
  async ferry(node: NamespaceNode, args: string[]) {
    return node.ns.exec([process.execPath, ferryBin(), ...withPlace(node, args)]);
  }

  /** `ferry trace -o json` (`--live`: from the node's kernel) run on the node over the manifests the agents follow, as an operator would. */
  async trace(host: NodeHost, backend: BackendName, query: { from: string; to: string; port: number; protocol: 'TCP' | 'UDP'; live?: boolean }): Promise<TraceAnswer & { matchesDesired?: boolean }> {
    const node = this.nodes.get(host.name)!;
    const to = endpointDestination({ ip: query.to, port: query.port });
    const result = await this.ferry(node, ['trace', '--node', node.name, '-f', this.manifestsPath, '--backend', backend, '--config', this.configPath,
      '--from', query.from, '--to', to, '--protocol', query.protocol, '-o', 'json', ...(query.live ? ['--live'] : [])]);
    if (result.exitCode !== 0) throw new Error(`ferry trace on ${node.name} failed: ${result.stderr}`);
    return JSON.parse(result.stdout) as TraceAnswer;
  }

  /** Writes the manifests and runs `ferry apply` on every node (the CLI, no agent); throws if any node fails. */
  async applyWithCli(objects: object[], backend: BackendName): Promise<void> {
    const manifests = await this.writeManifests(objects);
    for (const node of this.nodes.values()) {
      const result = await this.ferry(node, ['apply', '--node', node.name, '-f', manifests, '--backend', backend, '--config', this.configPath]);
      if (result.exitCode !== 0) throw new Error(`ferry apply on ${node.name} failed: ${result.stderr}`);
    }
  }

  /**
   * Publishes the objects to the manifests directory every node's agent watches (starting agents for
   * `backend` first if they run another one) and returns once every node's kernel holds the rules.
   */
  async apply(objects: object[], backend: BackendName): Promise<void> {
    const since = await this.logOffsets();
    if (this.agentBackend !== backend) {
      for (const node of this.nodes.values()) {
        await this.stopAgent(node);
        if (this.agentBackend) await this.ferry(node, ['cleanup', '--backend', this.agentBackend]);
      }
      await this.publish(objects);
      for (const node of this.nodes.values()) this.startAgent(node, backend);
      this.agentBackend = backend;
      await this.settle(backend, SETTLE_TIMEOUT_MS, since);
    } else {
      // Manifests that did not change make no agent sync: then only `ferry diff` is asked.
      const changed = await this.publish(objects);
      await this.settle(backend, SETTLE_TIMEOUT_MS, changed ? since : undefined);
    }
  }

  get configPath(): string {
    return join(this.directory, 'kube-proxy.yaml');
  }

  get manifestsPath(): string {
    return join(this.directory, 'manifests', 'cluster.yaml');
  }

  /**
   * Replaces the watched manifests in one rename, so an agent never reads a half-written file; says
   * whether they differ from the ones published before.
   */
  async publish(objects: object[]): Promise<boolean> {
    const text = this.manifestsText(objects);
    const staging = join(this.directory, 'cluster.yaml');
    await writeFile(staging, text);
    await mkdir(dirname(this.manifestsPath), { recursive: true });
    await rename(staging, this.manifestsPath);
    const changed = text !== this.published;
    this.published = text;
    return changed;
  }

  /**
   * Starts `ferry agent` in a node, watching the manifests directory; its debug log goes to
   * agent-NODE.log. Uniform balancing unless told otherwise: the scenarios check kube-proxy's
   * semantics, and `settle` compares with rules of equal weights.
   */
  startAgent(node: NamespaceNode, backend: BackendName, balancing: 'uniform' | 'least-busy' = 'uniform'): void {
    const child = node.ns.spawn(['env', 'FERRY_LOG_LEVEL=debug', process.execPath, ferryBin(), ...withPlace(node, ['agent']), '--node', node.name, '--manifests', dirname(this.manifestsPath),
      '--config', this.configPath, '--backend', backend, '--balancing', balancing], { log: this.agentLog(node) });
    this.agents.set(node.name, child);
  }

  /** Stops a node's agent with SIGTERM (its rules stay) and waits until it has exited. */
  async stopAgent(node: NamespaceNode): Promise<void> {
    const child = this.agents.get(node.name);
    if (!child) return;
    this.agents.delete(node.name);
    child.kill('SIGTERM');
    await child;
  }

  agentLog(node: NamespaceNode): string {
    return join(this.directory, `agent-${node.name}.log`);
  }

  /** Where each node's agent log ends now: `waitForLog` and `settle` look at what comes after. */
  async logOffsets(): Promise<Map<string, number>> {
    return new Map(await Promise.all([...this.nodes.values()].map(async (node) => [node.name, await this.logOffset(node)] as const)));
  }

  async logOffset(node: NamespaceNode): Promise<number> {
    return stat(this.agentLog(node)).then((info) => info.size, () => 0);
  }

  /** The agent log's JSON lines after byte `after` (lines that are not JSON are left out). */
  async logEntries(node: NamespaceNode, after = 0): Promise<AgentLogEntry[]> {
    return (await readLog(this.agentLog(node), after)).entries.map(({ entry }) => entry);
  }

  /**
   * Waits for the first line after byte `after` of a node's agent log that `match` accepts, reading
   * the log when it changes (inotify); gives up when the agent exits or at the deadline. Returns the
   * line and the byte offset after it.
   */
  async waitForLog(node: NamespaceNode, match: (entry: AgentLogEntry) => boolean, options: { after: number; timeoutMs?: number; deadline?: number }): Promise<{ entry: AgentLogEntry; offset: number }> {
    const deadline = options.deadline ?? Date.now() + (options.timeoutMs ?? SETTLE_TIMEOUT_MS);
    const path = this.agentLog(node);
    await writeFile(path, '', { flag: 'a' });
    const agent = this.agents.get(node.name);
    let wake = () => {};
    const watcher = watch(path, () => wake());
    let exited = false;
    void agent?.then(() => {
      exited = true;
      wake();
    });
    let offset = options.after;
    try {
      for (;;) {
        const read = await readLog(path, offset);
        const found = read.entries.find(({ entry }) => match(entry));
        if (found) return found;
        offset = read.end;
        if (exited) throw new Error(`${node.name}: the agent exited; its log ends: ${(await readLog(path, Math.max(0, offset - 2000))).text}`);
        const remaining = deadline - Date.now();
        if (remaining <= 0) throw new Error(`${node.name}: no such line in the agent's log; it ends: ${(await readLog(path, Math.max(0, offset - 2000))).text}`);
        // inotify is the event; the 1 s re-read only guards against a missed notification.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => resolve(), Math.min(remaining, 1000));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      watcher.close();
    }
  }

  /**
   * Waits until `ferry diff` finds every node's kernel holding the published manifests' rules. With
   * `since` (each node's log offset before the manifests changed), it first waits for each agent to
   * finish a sync after that; after a diff that still differs, for the agent's next sync. So `ferry
   * diff` (a process that costs about a second of CPU) runs about once per node and change, not in a loop.
   */
  async settle(backend: BackendName, timeoutMs = SETTLE_TIMEOUT_MS, since?: ReadonlyMap<string, number>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await Promise.all([...this.nodes.values()].map((node) => this.settleNode(node, backend, deadline, timeoutMs, since?.get(node.name))));
  }

  private async settleNode(node: NamespaceNode, backend: BackendName, deadline: number, timeoutMs: number, after: number | undefined): Promise<void> {
    let differences = '';
    for (let waitAfter = after; ;) {
      if (waitAfter !== undefined) {
        try {
          await this.waitForLog(node, isSyncOutcome, { after: waitAfter, deadline });
        } catch (error) {
          throw new Error(`${node.name}: the agent did not program the rules within ${timeoutMs} ms (${(error as Error).message})${differences}`);
        }
      }
      const before = await this.logOffset(node);
      const result = await this.ferry(node, ['diff', '--node', node.name, '-f', this.manifestsPath, '--backend', backend, '--config', this.configPath]);
      if (result.exitCode === 0) return;
      differences = `; ferry diff: ${result.stdout.slice(0, 2000)}${result.stderr}`;
      if (!this.agents.has(node.name)) throw new Error(`${node.name}: no agent runs and the rules differ${differences}`);
      waitAfter = before;
    }
  }

  /** Removes every namespace, process and file of the cluster. */
  async destroy(): Promise<void> {
    await this.lab.destroy();
    if (this.directory) await rm(this.directory, { recursive: true, force: true });
  }
}

// The commands that take the eBPF placement flags.
const PLACED = new Set(['render', 'diff', 'apply', 'agent', 'cleanup', 'trace', 'services']);

/** A ferry command line with the node's eBPF cgroup and pin directory. */
function withPlace(node: NamespaceNode, args: string[]): string[] {
  if (!PLACED.has(args[0]!)) return args;
  return [args[0]!, '--cgroup-root', node.place.cgroup, '--bpf-root', node.place.pinDir, ...args.slice(1)];
}

/** The command line of e2e/probe.ts for `options`, with its count and hold. */
function probeCommand(options: ProbeOptions, count: string, hold: string): string[] {
  // 5 s per connection: on a busy machine a first answer can take seconds; checks that expect a drop pass a shorter one.
  return [process.execPath, script('probe.js'), '--proto', options.proto, '--host', options.host, '--port', String(options.port),
    '--count', count, '--timeout-ms', String(options.timeoutMs ?? 5000), '--hold-ms', hold, '--interval-ms', String(options.intervalMs ?? 0),
    ...(options.reuse ? ['--reuse'] : [])];
}

/** Probe results as they come (Cluster.flow); `stop` ends the flow. */
export class Flow {
  constructor(private readonly stream: LineStream) {}

  /** The results so far. */
  get results(): ProbeResult[] {
    return this.stream.lines.map((line) => JSON.parse(line) as ProbeResult);
  }

  /**
   * The first result at index `from` or later that `match` accepts, once it is there; undefined when
   * `within` results after `from` did not match.
   */
  async next(match: (result: ProbeResult) => boolean = () => true, options: { from?: number; within?: number } = {}): Promise<ProbeResult | undefined> {
    const index = await this.stream.waitFor((line) => match(JSON.parse(line) as ProbeResult), options);
    return index === undefined ? undefined : this.results[index];
  }

  /** Stops the flow after the attempt in progress; every result. */
  async stop(): Promise<ProbeResult[]> {
    await this.stream.end();
    return this.results;
  }
}

/** The complete JSON lines of a log file after byte `after`, each with the offset after it. */
async function readLog(path: string, after: number): Promise<{ entries: { entry: AgentLogEntry; offset: number }[]; end: number; text: string }> {
  const file = await open(path, 'r');
  try {
    const size = (await file.stat()).size;
    const buffer = Buffer.alloc(Math.max(0, size - after));
    if (buffer.length > 0) await file.read(buffer, 0, buffer.length, after);
    const entries: { entry: AgentLogEntry; offset: number }[] = [];
    let start = 0;
    for (let newline = buffer.indexOf(10); newline !== -1; newline = buffer.indexOf(10, start)) {
      const line = buffer.subarray(start, newline).toString();
      start = newline + 1;
      if (!line.startsWith('{')) continue;
      try {
        entries.push({ entry: JSON.parse(line) as AgentLogEntry, offset: after + start });
      } catch {
        // Not a log line (a test's marker).
      }
    }
    return { entries, end: after + start, text: buffer.toString() };
  } finally {
    await file.close();
  }
}

async function addAddresses(ns: Namespace, device: string, ipv4: string, ipv6: string): Promise<void> {
  await ns.run(['ip', 'address', 'add', ipv4, 'dev', device]);
  // nodad: usable at once, no duplicate-address detection delay.
  await ns.run(['ip', 'address', 'add', ipv6, 'dev', device, 'nodad']);
}
