// npm run bench:agent — time from a manifest change to the rules in the kernel, with 1,000 Services
// × 10 endpoints present, 100 changes (one endpoint added each), for both backends. Runs itself in a
// throwaway network namespace (unshare --net) and writes docs/agent-latency.md.
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent, type SyncKind } from '../controlplane/agent/agent.js';
import type { NodeRules } from '../rules/node-rules.js';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { computeConfig, defaultConfig } from '../controlplane/config/kube-proxy-config.js';
import { buildClusterState } from '../controlplane/model/cluster-state.js';
import { packageRoot } from '../controlplane/package-root.js';
import { ManifestWatch } from '../controlplane/sources/manifest-watch.js';
import { compareRules } from '../dataplane/dataplane.js';
import { render } from '../dataplane/render.js';
import { BACKEND_NAMES, type BackendName } from '../dataplane/backend-names.js';
import { execaRunner } from '../dataplane/runner.js';
import { ownNetworkNamespace } from './own-namespace.js';
import { syntheticCluster } from './synthetic.js';

const SERVICES = 1000;
const ENDPOINTS = 10;
const CHANGES = 100;
// Changes are spaced past minSyncPeriod (1 s), so each is synced on its own and nothing waits for the rate limit.
const SPACING_MS = 1100;

ownNetworkNamespace(import.meta.url);

const config = { ...defaultConfig, clusterCIDRs: ['10.244.0.0/16'], detectLocalMode: 'ClusterCIDR' as const };

const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)]!;

async function measure(backend: BackendName) {
  const directory = await mkdtemp(join(tmpdir(), 'ferry-bench-'));
  const file = join(directory, 'manifests', 'cluster.json');
  const publish = async (extra: number) => {
    await writeFile(join(directory, 'next.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: syntheticCluster({ services: SERVICES, endpoints: ENDPOINTS }, (s) => (s < extra ? 1 : 0)) }));
    await rename(join(directory, 'next.json'), file);
  };
  await mkdir(join(directory, 'manifests'));
  await publish(0);
  // Resolved by the first sync whose rules hold the awaited change (not by a resync that began before it).
  let awaited: { test: (rules: NodeRules) => boolean; resolve: (kind: SyncKind) => void } | undefined;
  const syncHolding = (test: (rules: NodeRules) => boolean) => new Promise<SyncKind>((resolve) => {
    awaited = { test, resolve };
  });
  const logger = pino({ level: 'silent' });
  const agent = new Agent({
    node: 'node-0', config, backend,
    source: new ManifestWatch(join(directory, 'manifests'), logger), runner: execaRunner, logger, serve: false,
    onSynced: (kind, rules) => {
      if (awaited?.test(rules)) awaited.resolve(kind);
    },
  });
  const endpointsOf = (rules: NodeRules, service: number) =>
    rules.families[0]!.servicePorts.find((port) => port.id === `ns-${service % 20}/svc-${service}:http/tcp`)?.cluster?.endpoints.length;
  const startedAt = performance.now();
  let next = syncHolding((rules) => endpointsOf(rules, 0) === ENDPOINTS);
  await agent.start();
  await next;
  const startup = performance.now() - startedAt;
  const latencies: number[] = [];
  const kinds: Record<string, number> = {};
  for (let change = 1; change <= CHANGES; change++) {
    await new Promise((resolve) => setTimeout(resolve, SPACING_MS));
    next = syncHolding((rules) => endpointsOf(rules, change - 1) === ENDPOINTS + 1);
    const t0 = performance.now();
    await publish(change);
    const kind = await next;
    latencies.push(performance.now() - t0);
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  const sync = await agent.metrics.partialSyncDuration.get();
  const partialSum = sync.values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;
  const partialCount = sync.values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 1;
  await agent.stop();
  const { state } = buildClusterState(syntheticCluster({ services: SERVICES, endpoints: ENDPOINTS }, (s) => (s < CHANGES ? 1 : 0)));
  const { current, desired } = await compareRules(execaRunner, render(computeNodeRules(state, 'node-0', computeConfig(config, backend)), backend));
  await rm(directory, { recursive: true, force: true });
  return {
    backend, startup, kinds, kernelMatches: current === desired,
    p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: Math.max(...latencies), partialSyncMs: (partialSum / partialCount) * 1000,
  };
}

const rows = [];
for (const backend of BACKEND_NAMES) rows.push(await measure(backend));
const table = [
  `| backend | first full sync | change → kernel p50 | p99 | max | partial sync alone (mean) | syncs | kernel = desired after |`,
  `| --- | --- | --- | --- | --- | --- | --- | --- |`,
  ...rows.map((r) => `| ${r.backend} | ${r.startup.toFixed(0)} ms | ${r.p50.toFixed(0)} ms | ${r.p99.toFixed(0)} ms | ${r.max.toFixed(0)} ms | ${r.partialSyncMs.toFixed(0)} ms | ${Object.entries(r.kinds).map(([k, n]) => `${n} ${k}`).join(', ')} | ${r.kernelMatches ? 'yes' : 'NO'} |`),
].join('\n');
const report = `# Agent: manifest change to kernel

\`npm run bench:agent\` on ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.
${SERVICES} Services × ${ENDPOINTS} endpoints over 3 nodes present; ${CHANGES} changes, each adding one endpoint to
another Service, written as a new manifests file (JSON) renamed into the agent's watched directory,
${SPACING_MS} ms apart (past minSyncPeriod). "change → kernel" is from the rename to the end of the
first sync whose rules hold the change (the kernel transaction returned). It includes the watcher's
100 ms settle time and re-reading and re-parsing all ${SERVICES} Services from the file, which the API
source does not do, and, for the changes that arrive during a full resync (every 30 s), the wait for it.

${table}
`;
console.log(report);
await writeFile(join(packageRoot(), 'docs', 'agent-latency.md'), report);
