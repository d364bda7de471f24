// npm run bench — sync time, memory and per-packet cost from 1 to 50,000 Services, both backends.
// Each measurement runs bench/scale-run.ts in its own process and throwaway network namespace.
// Writes docs/performance.md.
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../controlplane/package-root.js';

interface Result {
  backend: string; services: number; endpoints: number; kernelMs: number; peakRssMB: number;
  fullSync: { computeMs: number; renderMs: number; applyMs: number; totalMs: number };
  incremental: { endpointAddedMs: number; serviceAddedMs: number; serviceRemovedMs: number };
  latency: { first: { p50: number; p99: number }; last: { p50: number; p99: number } };
}

// FERRY_BENCH_SIZES=all adds 50,000 × 10, 5,000 × 50 and iptables at 10,000: each takes many minutes
// (see "Not measured" in docs/performance.md), too long for one session's run.
const all = process.env.FERRY_BENCH_SIZES === 'all';
const runs: [string, number, number][] = [
  ['nftables', 1, 10], ['nftables', 1000, 10], ['nftables', 10_000, 10],
  ...(all ? [['nftables', 50_000, 10], ['nftables', 5000, 50]] as [string, number, number][] : []),
  ['iptables', 1, 10], ['iptables', 1000, 10],
  ...(all ? [['iptables', 10_000, 10]] as [string, number, number][] : []),
];
const results: Result[] = [];
const skipped: string[] = [];
for (const [backend, services, endpoints] of runs) {
  try {
    const output = execFileSync('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', process.execPath, join(packageRoot(), 'dist/bench/scale-run.js'),
      '--backend', backend, '--services', String(services), '--endpoints', String(endpoints)], { encoding: 'utf8', timeout: 20 * 60_000, maxBuffer: 1 << 20 });
    results.push(JSON.parse(output.trim().split('\n').at(-1)!) as Result);
    console.log(output.trim());
  } catch (error) {
    skipped.push(`${backend} ${services} × ${endpoints}: ${(error as Error).message.split('\n')[0]}`);
  }
}

const ms = (value: number) => (value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(0)} ms`);
const us = (value: number) => `${(value * 1000).toFixed(0)} µs`;
const table = [
  '| backend | Services × endpoints | full sync (compute + render + apply) | compute | render | apply | kernel alone | ratio full / kernel | + endpoint | + Service | − Service | peak RSS | set-up p50 / p99 first | last | last/first p50 |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...results.map((r) => `| ${r.backend} | ${r.services.toLocaleString('en')} × ${r.endpoints} | ${ms(r.fullSync.totalMs)} | ${ms(r.fullSync.computeMs)} | ${ms(r.fullSync.renderMs)} | ${ms(r.fullSync.applyMs)} | ${ms(r.kernelMs)} | ${(r.fullSync.totalMs / r.kernelMs).toFixed(2)} | ${ms(r.incremental.endpointAddedMs)} | ${ms(r.incremental.serviceAddedMs)} | ${ms(r.incremental.serviceRemovedMs)} | ${r.peakRssMB.toFixed(0)} MB | ${us(r.latency.first.p50)} / ${us(r.latency.first.p99)} | ${us(r.latency.last.p50)} / ${us(r.latency.last.p99)} | ${(r.latency.last.p50 / r.latency.first.p50).toFixed(2)} |`),
].join('\n');
const report = `# Performance

\`npm run bench\` on ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}; one run each.

Synthetic clusters (\`bench/synthetic.ts\`): N Services × M endpoints over 3 nodes, 70 % ClusterIP, 20 %
NodePort, 10 % LoadBalancer with externalTrafficPolicy Local, computed for one node. Every row runs
in its own process (peak RSS is that process's) and throwaway network namespace.

- full sync: model + compute, render, and \`applyRules\` (structure check, the kernel's check —
  \`nft -c\` / a restore in a throwaway namespace and \`iptables-restore --test\` — then the transaction);
- kernel alone: the same text straight into \`nft -f\` / \`iptables-restore\`, on an empty table;
- + endpoint / + Service / − Service: one change with N Services present, as the agent's partial sync
  does it (model, compute, render, diff against the previous text, one transaction);
- set-up: TCP connect latency through the rules to the first and to the last Service (300 connections
  each, from the namespace itself to endpoints on its loopback).

${table}
${skipped.length ? `\nFailed or timed out: ${skipped.join('; ')}\n` : ''}${all ? '' : `
Not measured in this run: nftables 50,000 × 10 and 5,000 × 50, iptables 10,000 × 10. The kernel
alone needs 43 s for 10,000 × 10 with nftables (one chain per endpoint: 100,000 chains), growing
faster than linearly, so these sizes take from many minutes to hours (\`FERRY_BENCH_SIZES=all npm run bench\`).
`}`;
console.log(report);
await writeFile(join(packageRoot(), 'docs', 'performance.md'), report);
