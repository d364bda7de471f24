// npm run bench:conntrack — the cost of one balancer sample (conntrack listing + counting) with
// 10,000 and 100,000 NATed connections in the table. Fills the table of a throwaway network namespace
// with `conntrack -I` (which takes a while: one command per entry) and appends to docs/balancing.md.
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { liveConnections } from '../controlplane/balance/live-connections.js';
import { packageRoot } from '../controlplane/package-root.js';
import { listNatedConnections } from '../dataplane/conntrack-sample.js';
import { execaRunner } from '../dataplane/runner.js';
import { ownNetworkNamespace } from './own-namespace.js';

ownNetworkNamespace(import.meta.url);

/** Inserts entries `from`..`to`-1: client 10.1.x.y → 10.96.0.1:80, NATed to one of 30 endpoints. */
function fill(from: number, to: number): void {
  const lines: string[] = [];
  for (let i = from; i < to; i++) {
    const client = `10.1.${(i >> 8) & 255}.${i & 255}`;
    const port = 1024 + (i >> 16);
    lines.push(`conntrack -I -p tcp -s ${client} -d 10.96.0.1 --sport ${port} --dport 80 --dst-nat 10.244.0.${10 + (i % 30)}:8080 --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 3600 >/dev/null 2>&1`);
  }
  const script = join('/tmp', `ferry-conntrack-${process.pid}.sh`);
  execFileSync('sh', ['-c', `cat > ${script}`], { input: lines.join('\n') });
  spawnSync('sh', [script], { stdio: 'ignore' });
}

const rows: string[] = [];
let filled = 0;
for (const size of [10_000, 100_000]) {
  const started = performance.now();
  fill(filled, size);
  filled = size;
  const fillSeconds = (performance.now() - started) / 1000;
  const samples: number[] = [];
  let counted = 0;
  for (let run = 0; run < 5; run++) {
    const t0 = performance.now();
    const counts = liveConnections(await listNatedConnections(execaRunner));
    samples.push(performance.now() - t0);
    counted = [...counts.values()].reduce((a, b) => a + b, 0);
  }
  samples.sort((a, b) => a - b);
  rows.push(`| ${size.toLocaleString('en')} | ${counted.toLocaleString('en')} | ${samples[2]!.toFixed(0)} ms | ${samples[4]!.toFixed(0)} ms | ${fillSeconds.toFixed(0)} s |`);
  console.log(rows.at(-1));
}
const report = `
## Cost of one sample

\`npm run bench:conntrack\` (one run, in a throwaway network namespace): the table filled with
established, NATed TCP entries by \`conntrack -I\`, then five samples (listing both families with
\`conntrack -L --dst-nat\` and counting per endpoint). The balancer samples every 2,000 ms.

| entries | counted | sample median | slowest of 5 | time to fill |
| --- | --- | --- | --- | --- |
${rows.join('\n')}
`;
console.log(report);
await appendFile(join(packageRoot(), 'docs', 'balancing.md'), report);
