// npm run bench — sync time, memory and per-packet cost from 1 to 50,000 Services, both backends.
// Each measurement runs bench/scale-run.ts in its own process and throwaway network namespace.
// Writes docs/performance.md.
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../controlplane/package-root.js';

interface Change { ms: number; kernelMs: number }
interface Result {
  backend: string; services: number; endpoints: number; kernelMs: number; peakRssMB: number;
  fullSync: { computeMs: number; renderMs: number; applyMs: number; kernelMs: number; totalMs: number };
  incremental: { endpointAdded: Change; serviceAdded: Change; serviceRemoved: Change };
  resync: Change;
  latency: { first: { p50: number; p99: number }; last: { p50: number; p99: number } };
}

// The sizes of issue #6. FERRY_BENCH_SIZES=small keeps the runs under a minute (1 and 1,000 Services);
// =all adds iptables at 10,000, where a single iptables-restore runs for more than ten minutes.
const sizes = process.env.FERRY_BENCH_SIZES ?? 'default';
const runs: [string, number, number][] = [
  ['nftables', 1, 10], ['nftables', 1000, 10],
  ...(sizes === 'small' ? [] : [['nftables', 10_000, 10], ['nftables', 50_000, 10], ['nftables', 5000, 50]] as [string, number, number][]),
  ['iptables', 1, 10], ['iptables', 1000, 10],
  ...(sizes === 'small' ? [] : [['iptables', 3000, 10]] as [string, number, number][]),
  ...(sizes === 'all' ? [['iptables', 10_000, 10]] as [string, number, number][] : []),
];
const results: Result[] = [];
const skipped: string[] = [];
for (const [backend, services, endpoints] of runs) {
  try {
    const output = execFileSync('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', process.execPath, join(packageRoot(), 'dist/bench/scale-run.js'),
      '--backend', backend, '--services', String(services), '--endpoints', String(endpoints)], { encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 1 << 20 });
    results.push(JSON.parse(output.trim().split('\n').at(-1)!) as Result);
    console.log(output.trim());
  } catch (error) {
    skipped.push(`${backend} ${services} × ${endpoints}: ${(error as Error).message.split('\n')[0]}`);
  }
}

const ms = (value: number) => (value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(0)} ms`);
const us = (value: number) => `${(value * 1000).toFixed(0)} µs`;
const change = (c: Change) => `${ms(c.ms)} (${ms(c.kernelMs)})`;
const table = [
  '| backend | Services × endpoints | full sync | compute | render | apply (of which tools) | kernel alone | ratio full / kernel alone | + endpoint (tools) | + Service (tools) | − Service (tools) | periodic full resync (tools) | peak RSS | set-up p50 / p99 first Service | last Service | last/first p50 |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...results.map((r) => `| ${r.backend} | ${r.services.toLocaleString('en')} × ${r.endpoints} | ${ms(r.fullSync.totalMs)} | ${ms(r.fullSync.computeMs)} | ${ms(r.fullSync.renderMs)} | ${ms(r.fullSync.applyMs)} (${ms(r.fullSync.kernelMs)}) | ${ms(r.kernelMs)} | ${(r.fullSync.totalMs / r.kernelMs).toFixed(2)} | ${change(r.incremental.endpointAdded)} | ${change(r.incremental.serviceAdded)} | ${change(r.incremental.serviceRemoved)} | ${change(r.resync)} | ${r.peakRssMB.toFixed(0)} MB | ${us(r.latency.first.p50)} / ${us(r.latency.first.p99)} | ${us(r.latency.last.p50)} / ${us(r.latency.last.p99)} | ${(r.latency.last.p50 / r.latency.first.p50).toFixed(2)} |`),
].join('\n');
const report = `# Performance

\`npm run bench\` on ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${nftVersion()}, kernel ${release()}, ${new Date().toISOString().slice(0, 10)}; every number from this one run.

Synthetic clusters (\`bench/synthetic.ts\`): N Services × M endpoints over 3 nodes, 70 % ClusterIP, 20 %
NodePort (while the 2,768 node ports last, then ClusterIP), 10 % LoadBalancer with externalTrafficPolicy
Local and no node port, computed for one node. Every row runs in its own process (peak RSS is that
process's) and throwaway network namespace.

- full sync: model + compute, render, and \`applyRules\` (structure check, then the transaction: one
  \`nft -f\`; for iptables \`iptables-save\`, \`iptables-restore --test\`, \`iptables-restore\`). "tools" is the
  time spent in those commands;
- kernel alone: the same text straight into \`nft -f\` / \`iptables-restore\`, on an empty table;
- + endpoint / + Service / − Service: one change with N Services present, as the agent's partial sync
  makes it (the objects as an informer holds them, model, compute, render, structure check, the
  transaction of what changed), from the change reaching the model to the command's exit; in brackets
  the time of the commands alone;
- periodic full resync: what the agent does every syncPeriod with N Services present (nftables: names
  listed, every rule re-asserted in one transaction; iptables: \`iptables-save\`, then what differs);
- set-up: TCP connect latency through the rules to the first and to the last Service in the order of
  the rules (1,000 connections each, alternating, from the namespace itself to endpoints on its
  loopback): iptables tests one Service after another, nftables looks the address up in a map.

${table}
${skipped.length ? `\nFailed or timed out: ${skipped.join('; ')}\n` : ''}`;
console.log(report);
await writeFile(join(packageRoot(), 'docs', 'performance.md'), report);

function nftVersion(): string {
  try {
    return execFileSync('nft', ['--version'], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } }).trim().split(' (')[0]!;
  } catch {
    return 'nft unknown';
  }
}
