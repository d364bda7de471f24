// One scale measurement (a backend, N Services × M endpoints), run by bench/scale.ts in its own
// throwaway network namespace and process, so that peak RSS and kernel state belong to this run only.
// Prints one JSON line.
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { computeFromIndex, updateNodeRules, type ComputeConfig } from '../controlplane/compute/compute.js';
import { ClusterStore, type ObjectChange } from '../controlplane/model/cluster-store.js';
import type { NodeRules } from '../rules/node-rules.js';
import { applyChanges, applyIfChanged, cleanupRules, diffRules, reassertRules, startSync } from '../dataplane/dataplane.js';
import { render, type RenderedRules } from '../dataplane/render.js';
import type { BackendName } from '../dataplane/backend-names.js';
import { execaRunner, runChecked, type Runner } from '../dataplane/runner.js';
import { readKernel } from '../dataplane/ebpf/backend.js';
import { nftOf, scriptText } from '../dataplane/nftables/render.js';
import { benchPlacement, ownNetworkNamespace } from './own-namespace.js';
import { clusterIP, endpointIP, syntheticCluster, syntheticService } from './synthetic.js';

ownNetworkNamespace(import.meta.url);

const { values } = parseArgs({ options: { backend: { type: 'string' }, services: { type: 'string' }, endpoints: { type: 'string' }, 'full-sync-only': { type: 'boolean' } } });
const backend = values.backend as BackendName;
const N = Number(values.services);
const M = Number(values.endpoints);
// eBPF: a cgroup and a bpffs of this run's own (never the machine's root cgroup), and this process in
// the cgroup, so that its own connections go through the socket programs.
const placement = backend === 'ebpf' ? await benchPlacement() : undefined;
const options = placement && { ebpf: { cgroupRoot: placement.cgroup, bpfRoot: placement.pinDir } };
const config: ComputeConfig = { clusterCIDRs: ['10.244.0.0/16'], detectLocalMode: 'ClusterCIDR', nodePortAddresses: { kind: 'primary' }, masqueradeBit: 14, masqueradeAll: false };
const now = () => performance.now();

/** The runner, timing what the kernel's tools take, so that ferry's own share can be told apart. */
let toolMs = 0;
const runner: Runner = {
  async run(command, args, input) {
    const t0 = now();
    try {
      return await execaRunner.run(command, args, input);
    } finally {
      toolMs += now() - t0;
    }
  },
  async stream(command, args, input) {
    const t0 = now();
    try {
      return await execaRunner.stream!(command, args, input);
    } finally {
      toolMs += now() - t0;
    }
  },
};

/**
 * The kernel alone: the same text straight into nft / iptables-restore, nothing else, in a fresh
 * namespace of its own, as the full sync found it (a second load into the same namespace is faster).
 * The nftables script is written to a file first, piece by piece: held whole, it would count in this
 * process's peak RSS, which is meant to be ferry's.
 */
async function kernelOnly(rendered: RenderedRules): Promise<number> {
  // eBPF: its map writes cannot be run without ferry's planning; the full sync's tools are the rest.
  if (backend === 'ebpf') return Number.NaN;
  if (backend === 'nftables') {
    const directory = await mkdtemp(join(tmpdir(), 'ferry-bench-'));
    try {
      const file = createWriteStream(join(directory, 'rules.nft'));
      for (const piece of scriptText(nftOf(rendered))) if (!file.write(piece)) await once(file, 'drain');
      file.end();
      await finished(file);
      const t0 = now();
      await runChecked(execaRunner, 'nft', 'unshare', ['--net', '--', 'nft', '-f', join(directory, 'rules.nft')]);
      return now() - t0;
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  }
  const t0 = now();
  for (const part of rendered.texts) await runChecked(execaRunner, 'restore', 'unshare', ['--net', '--', part.family === 'IPv4' ? 'iptables-restore' : 'ip6tables-restore', '--noflush'], part.text);
  return now() - t0;
}

/**
 * One change, as the agent's partial sync makes it: the changed objects reach the store (as
 * informer events), then the tracked Services are computed, rendered and checked, and applyChanges
 * writes the transaction of what changed. Timed from the event to the command's exit.
 */
async function incremental(previous: { rules: NodeRules; rendered: RenderedRules }, changes: ObjectChange[]): Promise<{ ms: number; kernelMs: number; next: { rules: NodeRules; rendered: RenderedRules } }> {
  toolMs = 0;
  const t0 = now();
  for (const change of changes) store.apply(change);
  const { index, services } = store.take();
  const { rules: nextRules, changed } = updateNodeRules(previous.rules, index, 'node-0', config, new Map(), services);
  const next = render(nextRules, backend, options, changed === 'all' ? undefined : { previous: previous.rendered, changed });
  const kind = await applyChanges(runner, previous.rendered, next);
  if (kind !== 'partial') throw new Error(`expected a partial sync, got ${kind}`);
  return { ms: now() - t0, kernelMs: toolMs, next: { rules: nextRules, rendered: next } };
}

/**
 * Connection set-up latency through the rules to the cluster IPs of two Services, p50 and p99 over
 * `count` connections each, alternating between them so that drift in the machine affects both alike.
 */
async function setupLatency(services: [number, number], count: number): Promise<{ p50: number; p99: number }[]> {
  const samples: number[][] = [[], []];
  for (let i = 0; i < 2 * count; i++) {
    const t0 = now();
    await new Promise<void>((resolve, reject) => {
      const socket = connect({ host: clusterIP(services[i % 2]!), port: 80 }, () => {
        samples[i % 2]!.push(now() - t0);
        socket.destroy();
        resolve();
      });
      socket.on('error', reject);
    });
  }
  return samples.map((list) => {
    list.sort((a, b) => a - b);
    return { p50: list[Math.floor(count / 2)]!, p99: list[Math.floor(count * 0.99)]! };
  });
}

const base = syntheticCluster({ services: N, endpoints: M });
toolMs = 0;
const full0 = now();
// As the agent at its start: the backend gets ready (eBPF: loads its programs) while the rules are computed.
startSync(runner, backend, options);
// The agent's store, as its source's first view fills it.
const store = new ClusterStore('node-0');
store.replaceAll(base);
const rules = computeFromIndex(store.take().index, 'node-0', config);
const computed = now();
// As the agent's first sync (and `ferry apply`): the backend renders the rules itself, nftables into
// nft while it renders them (a kernel without ferry's tables).
const { rendered } = await applyIfChanged(runner, rules, backend, { backend: options });
const fullSync = { computeMs: computed - full0, applyMs: now() - computed, kernelMs: toolMs, totalMs: now() - full0 };
// Another sample of the full sync alone (bench/scale.ts takes the median of several processes).
if (values['full-sync-only']) {
  if (placement) {
    await cleanupRules(execaRunner, 'ebpf', options);
    await placement.remove();
  }
  console.log(JSON.stringify({ fullSync }));
  process.exit(0);
}

// What reading the rules back costs (a comparison with the kernel needs it; the periodic resync does not).
const list0 = now();
// (Into /dev/null: the listing is the kernel's work; held here, it would count in ferry's peak RSS.)
if (backend === 'nftables') await runChecked(execaRunner, 'nft', 'sh', ['-c', 'nft list table ip ferry > /dev/null']);
else if (backend === 'iptables') await runChecked(execaRunner, 'iptables-save', 'sh', ['-c', 'iptables-save > /dev/null']);
// eBPF: what `ferry diff` reads of the kernel (attachments, the maps' summary, the companion table).
else await readKernel(execaRunner, options!.ebpf);
const listMs = now() - list0;
if (backend === 'ebpf' && (await diffRules(execaRunner, rendered)) !== '') throw new Error('ferry eBPF: the kernel does not hold what was applied');

// The first and the last Service in the order of the rules (iptables tests Services one rule after
// another in this order; nftables looks them up in a map). Their endpoints answer on this namespace's
// loopback; cluster IPs need a route for connect() to reach the output hook, where DNAT sends them there.
const order = rules.families[0]!.servicePorts.map((port) => Number(/\/svc-(\d+):/.exec(port.id)![1]));
const [firstService, lastService] = [order[0]!, order.at(-1)!];
await runChecked(execaRunner, 'ip', 'ip', ['route', 'add', '10.96.0.0/16', 'dev', 'lo']);
for (const service of new Set([firstService, lastService])) {
  for (let e = 0; e < M; e++) await runChecked(execaRunner, 'ip', 'ip', ['address', 'add', `${endpointIP(service, e, M)}/32`, 'dev', 'lo']);
}
const server = createServer((socket) => socket.end());
await new Promise<void>((resolve) => server.listen(8080, '0.0.0.0', resolve));
const [first, last] = await setupLatency([firstService, lastService], 1000);
server.close();

// Incremental syncs with N Services present: one endpoint added, one Service added, one removed.
const endpointAdded = await incremental({ rules, rendered }, [{ type: 'put', object: syntheticService(0, M, 1)[1]! }]);
const serviceAdded = await incremental(endpointAdded.next, syntheticService(N, M).map((object) => ({ type: 'put', object })));
const serviceRemoved = await incremental(serviceAdded.next, syntheticService(N, M).map((object) => ({ type: 'delete', object })));

// The agent's periodic full resync with N Services present: everything re-asserted, nothing read back but names.
toolMs = 0;
const resync0 = now();
await reassertRules(runner, serviceRemoved.next.rendered);
const resync = { ms: now() - resync0, kernelMs: toolMs };

// Ferry's peak memory: before the kernel-alone run and the rendering alone below, which are the
// bench's, not what an agent does.
const peakRssMB = process.resourceUsage().maxRSS / 1024;

// The kernel alone: ferry's overhead is full sync / this.
const kernelMs = await kernelOnly(rendered);

if (placement) {
  await cleanupRules(execaRunner, 'ebpf', options);
  await placement.remove();
}

// Rendering alone, for reference (the full sync renders as it writes).
const render0 = now();
render(rules, backend, options);
const renderMs = now() - render0;

console.log(JSON.stringify({
  backend, services: N, endpoints: M, fullSync, renderMs, kernelMs, listMs,
  incremental: {
    endpointAdded: { ms: endpointAdded.ms, kernelMs: endpointAdded.kernelMs },
    serviceAdded: { ms: serviceAdded.ms, kernelMs: serviceAdded.kernelMs },
    serviceRemoved: { ms: serviceRemoved.ms, kernelMs: serviceRemoved.kernelMs },
  },
  resync, latency: { first, last }, peakRssMB,
}));
