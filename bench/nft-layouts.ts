// What one endpoint change costs the kernel in three nftables layouts at N Services (default 10,000) × 10
// endpoints, in a namespace of this run's own: ferry's (a chain per Service whose numgen rules pick the
// endpoint), the same split over SHARDS tables (each with its own hooks and dispatch map: the kernel
// validates only the table a transaction touches), and the layout whose endpoint changes are element
// writes only (a named interval map per Service: numgen's draw → endpoint address and port). Beside
// them, what the kernel takes for one element of each kind. Not part of `npm run bench`. Writes
// docs/nft-layouts.md.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execaRunner, runChecked } from '../dataplane/runner.js';
import { packageRoot } from '../controlplane/package-root.js';
import { ownNetworkNamespace } from './own-namespace.js';

ownNetworkNamespace(import.meta.url);
const N = Number(process.argv[2] ?? 10000);
const M = 10;
// The map layout's draw: numgen over a fixed range, each endpoint an interval of it (the weights).
const RANGE = 65536;
const SHARDS = 16;
type Layout = 'rules' | 'shards' | 'maps';
const directory = await mkdtemp(join(tmpdir(), 'ferry-nft-layouts-'));

const clusterIP = (i: number) => `10.96.${i >> 8}.${i & 255}`;
const endpoint = (i: number, e: number) => {
  const n = i * M + e;
  return `10.${64 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
};

/** The table of Service `i`: `t`, or in the sharded layout `t` and its shard's number. */
const tableOf = (layout: Layout, i: number) => (layout === 'shards' ? `t${i % SHARDS}` : 't');

/** The tables: each a dispatch map to a chain per Service, its hooks, and each of its Services in the layout's form. */
function tables(layout: Layout): string {
  const lines: string[] = [];
  for (const name of layout === 'shards' ? Array.from({ length: SHARDS }, (_, k) => `t${k}`) : ['t']) {
    const mine = Array.from({ length: N }, (_, i) => i).filter((i) => tableOf(layout, i) === name);
    lines.push(`table ip ${name} {`, '\tmap service-ips {', '\t\ttype ipv4_addr . inet_proto . inet_service : verdict', '\t\telements = {');
    for (const i of mine) lines.push(`\t\t\t${clusterIP(i)} . tcp . 80 : goto svc-${i},`);
    lines.push('\t\t}', '\t}');
    lines.push('\tset plain { type ipv4_addr; }', '\tmap addresses { type ipv4_addr : ipv4_addr . inet_service; }');
    lines.push('\tchain mark-for-masquerade {', '\t\tmeta mark set meta mark | 0x4000', '\t}');
    lines.push('\tchain services {', '\t\tip daddr . meta l4proto . th dport vmap @service-ips', '\t}');
    lines.push('\tchain output {', '\t\ttype nat hook output priority -100;', '\t\tjump services', '\t}');
    lines.push('\tchain prerouting {', '\t\ttype nat hook prerouting priority -100;', '\t\tjump services', '\t}');
    for (const i of mine) lines.push(...service(layout, i, Array.from({ length: M }, (_, e) => endpoint(i, e))));
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}

function service(layout: Layout, i: number, endpoints: string[]): string[] {
  const masquerade = `\t\tip daddr ${clusterIP(i)} tcp dport 80 ip saddr != 10.244.0.0/24 jump mark-for-masquerade`;
  if (layout !== 'maps') {
    return [`\tchain svc-${i} {`, masquerade, ...endpoints.map((ip, e) => (e < endpoints.length - 1
      ? `\t\tmeta l4proto tcp numgen random mod ${endpoints.length - e} < 1 dnat to ${ip}:8080`
      : `\t\tmeta l4proto tcp dnat to ${ip}:8080`)), '\t}'];
  }
  return [
    `\tmap ep-${i} {`, `\t\ttypeof numgen random mod ${RANGE} : ip daddr . tcp dport`, '\t\tflags interval', `\t\telements = { ${intervals(endpoints)} }`, '\t}',
    `\tchain svc-${i} {`, masquerade, `\t\tmeta l4proto tcp dnat ip to numgen random mod ${RANGE} map @ep-${i}`, '\t}',
  ];
}

function intervals(endpoints: string[]): string {
  const bound = (e: number) => Math.round((RANGE * e) / endpoints.length);
  return endpoints.map((ip, e) => `${bound(e)}-${bound(e + 1) - 1} : ${ip} . 8080`).join(', ');
}

async function timed(script: string): Promise<number> {
  const file = join(directory, 'script.nft');
  await writeFile(file, script);
  const started = performance.now();
  await runChecked(execaRunner, 'nft', 'nft', ['-f', file]);
  return performance.now() - started;
}

/** The median of five runs of a script (each a transaction that leaves the table as the last left it). */
async function median(script: (round: number) => string): Promise<number> {
  const runs: number[] = [];
  for (let round = 0; round < 5; round++) runs.push(await timed(script(round)));
  return runs.sort((a, b) => a - b)[2]!;
}

// One endpoint added to Service 5, as each layout writes it.
const grown = (round: number) => [...Array.from({ length: M }, (_, e) => endpoint(5, e)), `10.99.0.${round + 1}`];
interface Result { load: number; endpointAdded: number; elements: Record<string, number> }
const results = {} as Record<Layout, Result>;
try {
  for (const layout of ['rules', 'shards', 'maps'] as const) {
    const table = tableOf(layout, 5);
    const load = await timed(tables(layout));
    const endpointAdded = await median((round) => (layout !== 'maps'
      ? `flush chain ip ${table} svc-5\ntable ip ${table} {\n${service(layout, 5, grown(round)).join('\n')}\n}\n`
      : `flush map ip t ep-5\nadd element ip t ep-5 { ${intervals(grown(round))} }\n`));
    const elements = {
      'a plain set element': await median((round) => `add element ip ${table} plain { 10.1.0.${round + 1} }\n`),
      'an address map element': await median((round) => `add element ip ${table} addresses { 10.1.0.${round + 1} : 10.2.0.1 . 80 }\n`),
      'a verdict map element (goto)': await median((round) => `add element ip ${table} service-ips { 10.97.0.${round + 1} . tcp . 80 : goto svc-5 }\n`),
    };
    results[layout] = { load, endpointAdded, elements };
    await runChecked(execaRunner, 'nft', 'nft', ['flush', 'ruleset']);
  }
} finally {
  await rm(directory, { recursive: true, force: true });
}

const ms = (value: number) => (value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`);
const { rules, shards, maps } = results;
const report = `# nftables: what one endpoint change costs the kernel, in three layouts

\`npm run bench:nft-layouts\` (\`bench/nft-layouts.ts\`), ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, Node ${process.version}, one run at ${N.toLocaleString('en')} Services × ${M} endpoints; each change the median of five \`nft -f\`.

| layout | load of the table | one endpoint added to one Service |
| --- | --- | --- |
| ferry's: a chain per Service, numgen rules that DNAT | ${ms(rules.load)} | ${ms(rules.endpointAdded)} (the chain flushed and written again) |
| the same in ${SHARDS} tables, each with its hooks and dispatch map | ${ms(shards.load)} | ${ms(shards.endpointAdded)} (the same, in one of the tables) |
| a named interval map per Service (draw → address . port), one DNAT rule | ${ms(maps.load)} | ${ms(maps.endpointAdded)} (the map's elements replaced, no rule touched) |

One element written into each layout (the same sets and maps in every table), for comparison:

| element | ferry's layout | ${SHARDS} tables | interval map per Service |
| --- | --- | --- | --- |
${Object.keys(rules.elements).map((what) => `| ${what} | ${ms(rules.elements[what]!)} | ${ms(shards.elements[what]!)} | ${ms(maps.elements[what]!)} |`).join('\n')}

- A rule change makes the kernel validate the whole table (every chain reachable from the hooks) before
  it commits, and so does a verdict map element that jumps or goes to a chain. Only elements without a
  verdict skip that: they cost what nft's own start and its cache of the table cost.
- Split over ${SHARDS} tables, a change validates one table, a ${SHARDS}th of the chains: the rule rewrite costs
  ${(shards.endpointAdded / rules.endpointAdded).toFixed(2)} × what it costs in one table, and a plain element write
  ${(shards.elements['a plain set element']! / rules.elements['a plain set element']!).toFixed(2)} × (nft's own start and cache). A packet meets every table's hooks (one map lookup each for a new connection).
- The map layout makes endpoint changes element writes, but with ${N.toLocaleString('en')} interval maps in
  the table every transaction costs nft more (the element rows: the same commands in both tables):
  ${maps.endpointAdded > rules.endpointAdded ? 'its endpoint change costs more than the rule rewrite it replaces' : 'its endpoint change still costs less than the rule rewrite'}.
- A single map for all Services instead would need the Service in its key. nft takes no constant in a
  concatenated lookup key (\`dnat to 17 . numgen random mod 2 map @m\` does not parse), and keying by
  frontend multiplies the elements by a Service's addresses and node ports.
`;
await writeFile(join(packageRoot(), 'docs', 'nft-layouts.md'), report);
console.log(report);
