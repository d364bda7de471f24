// `ferry top`: a live view of the load-aware balancer on a node, read from the agent's /balancer (on its
// metrics address): per Service port and endpoint the live connections, the smoothed load, the weight
// in the kernel and its share of new connections, busiest first.
import { get } from 'node:http';
import type { BalancerEndpoint, BalancerPort, BalancerView } from '../agent/balancer-view.js';
import { endpointDestination } from '../../dataplane/render-shapes.js';

export const TOP_OUTPUTS = ['table', 'json'] as const;
export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:10249';

export interface TopOptions {
  metricsAddress: string;
  once?: boolean;
  output: (typeof TOP_OUTPUTS)[number];
  namespace?: string;
  allNamespaces?: boolean;
  /** Seconds between frames. */
  interval: number;
}

/** Where the frames go, and what decides colour and clearing (a test passes its own). */
export interface TopIO {
  write: (text: string) => void;
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  /** Resolves when the user asks to stop (Ctrl-C). */
  interrupted: Promise<void>;
  now: () => number;
}

/** The /balancer URL of a metrics address: HOST:PORT, [IPv6]:PORT, or a whole http:// URL. */
export function balancerURL(address: string): string {
  if (/^https?:\/\//.test(address)) return `${address.replace(/\/+$/, '')}/balancer`;
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  const host = address.slice(0, colon);
  if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--metrics-address ${address}: expected HOST:PORT, e.g. ${DEFAULT_METRICS_ADDRESS}`);
  // An unbracketed IPv6 host (::1:10249: host ::1, port 10249) gets its brackets.
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${bracketed}:${port}/balancer`;
}

/** GETs the agent's /balancer; a failure is one line that names the address. */
export function fetchBalancer(address: string, timeoutMs = 5000): Promise<BalancerView> {
  const url = balancerURL(address);
  return new Promise((resolve, reject) => {
    const fail = (why: string) => reject(new Error(`cannot read the balancer from the agent at ${address} (${why}): is ferry agent running there, with this metricsBindAddress? (--metrics-address)`));
    // No keep-alive: a finished `top --once` must not wait for an idle socket.
    const request = get(url, { agent: false, timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('error', (error) => fail(error.message));
      response.on('end', () => {
        if (response.statusCode === 404) return fail('HTTP 404: this agent does not serve /balancer; it may be an older ferry');
        if (response.statusCode !== 200) return fail(`HTTP ${response.statusCode}`);
        try {
          resolve(JSON.parse(body) as BalancerView);
        } catch {
          fail('its answer is not JSON');
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    request.on('error', (error: NodeJS.ErrnoException) => fail(error.code === 'ECONNREFUSED' ? `connection refused at ${url}` : error.message));
  });
}

/** Only the Service ports of one namespace (undefined: all). */
export function inNamespace(view: BalancerView, namespace: string | undefined): BalancerView {
  return namespace === undefined ? view : { ...view, servicePorts: view.servicePorts.filter((port) => port.namespace === namespace) };
}

const ANSI = { bold: '\x1b[1m', red: '\x1b[31m', yellow: '\x1b[33m', dim: '\x1b[2m', reset: '\x1b[0m' };

/** The port's busiest load, to sort ports by (busiest first); ports never sampled last. */
const portLoad = (port: BalancerPort) => Math.max(-1, ...port.endpoints.map((endpoint) => endpoint.load ?? -1));

/**
 * The endpoints to highlight in a port: those with its highest load, when that is above the port's mean
 * (equal load highlights none).
 */
export function busiest(port: BalancerPort): Set<BalancerEndpoint> {
  const loads = port.endpoints.map((endpoint) => endpoint.load ?? 0);
  const top = Math.max(0, ...loads);
  const mean = loads.reduce((sum, load) => sum + load, 0) / (loads.length || 1);
  return new Set(top > mean ? port.endpoints.filter((endpoint) => (endpoint.load ?? 0) === top) : []);
}

/** Whether an endpoint's kernel weight is below the top weight of a group it is in: the balancer steers away from it. */
function steeredAway(port: BalancerPort, endpoint: BalancerEndpoint): boolean {
  return (['cluster', 'local'] as const).some((group) => {
    const own = endpoint[group]?.weight;
    const most = Math.max(...port.endpoints.map((other) => other[group]?.weight ?? 0));
    return own !== undefined && own < most;
  });
}

/** One frame of the table: a heading line, then one row per endpoint, ports and endpoints busiest first. */
export function topTable(view: BalancerView, options: { color: boolean; now: number }): string {
  const paint = (text: string, ...styles: (keyof typeof ANSI)[]) => (options.color && styles.length > 0 ? `${styles.map((style) => ANSI[style]).join('')}${text}${ANSI.reset}` : text);
  const age = (iso: string | null) => (iso === null ? 'never' : `${formatTime(iso)} (${Math.max(0, (options.now - Date.parse(iso)) / 1000).toFixed(0)} s ago)`);
  const heading = `node ${view.node}   backend ${view.backend}   balancing ${view.balancing}   sampled ${age(view.sampledAt)}   synced ${age(view.syncedAt)}`;
  if (view.syncedAt === null) return `${heading}\nwaiting for the agent's first sync\n`;
  const ports = [...view.servicePorts].sort((a, b) => portLoad(b) - portLoad(a) || a.id.localeCompare(b.id) || a.family.localeCompare(b.family));
  if (ports.length === 0) return `${heading}\nno Service ports\n`;
  const withLocal = ports.some((port) => port.endpoints.some((endpoint) => endpoint.local !== null));
  const header = ['SERVICE PORT', 'ENDPOINT', 'CONNECTIONS', 'LOAD', 'WEIGHT', 'SHARE', ...(withLocal ? ['LOCAL WEIGHT', 'LOCAL SHARE'] : [])];
  const rows: { cells: string[]; styles: (keyof typeof ANSI)[] }[] = [];
  for (const port of ports) {
    if (port.endpoints.length === 0) {
      rows.push({ cells: [port.id, '(no endpoints)', '-', '-', '-', '-', ...(withLocal ? ['-', '-'] : [])], styles: ['dim'] });
      continue;
    }
    const hot = busiest(port);
    const endpoints = [...port.endpoints].sort((a, b) => (b.load ?? -1) - (a.load ?? -1));
    for (const endpoint of endpoints) {
      rows.push({
        cells: [
          port.id, endpointDestination(endpoint), endpoint.connections === null ? '-' : String(endpoint.connections),
          endpoint.load === null ? '-' : endpoint.load.toFixed(1),
          endpoint.cluster ? String(endpoint.cluster.weight) : '-', endpoint.cluster ? percent(endpoint.cluster.share) : '-',
          ...(withLocal ? [endpoint.local ? String(endpoint.local.weight) : '-', endpoint.local ? percent(endpoint.local.share) : '-'] : []),
        ],
        styles: hot.has(endpoint) ? ['bold', steeredAway(port, endpoint) ? 'red' : 'yellow'] : [],
      });
    }
  }
  // Numbers right-aligned, names left-aligned; the styles go around whole rows so that padding stays right.
  const numeric = (column: number) => column >= 2;
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row.cells[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, column) => (numeric(column) ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join('  ').trimEnd();
  return [heading, '', paint(line(header), 'bold'), ...rows.map((row) => paint(line(row.cells), ...row.styles))].join('\n') + '\n';
}

function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

function formatTime(iso: string): string {
  return new Date(iso).toISOString().slice(11, 19);
}

/** One frame in the chosen output. */
function frame(view: BalancerView, options: TopOptions, color: boolean, now: number): string {
  return options.output === 'json' ? `${JSON.stringify(view, null, 2)}\n` : topTable(view, { color, now });
}

const CLEAR = '\x1b[H\x1b[2J';

/**
 * Prints one frame (`--once`), or a frame every interval until interrupted, clearing the screen
 * between frames on a terminal. An agent that cannot be reached at first is an error; later, the frame
 * says so and `top` keeps asking.
 */
export async function runTop(options: TopOptions, io: TopIO): Promise<void> {
  if (options.namespace !== undefined && options.allNamespaces) throw new Error('-n and -A exclude each other');
  if (!Number.isFinite(options.interval) || options.interval <= 0) throw new Error(`--interval ${options.interval}: expected a positive number of seconds`);
  balancerURL(options.metricsAddress);
  const color = io.isTTY && io.env.NO_COLOR === undefined;
  const read = async () => inNamespace(await fetchBalancer(options.metricsAddress), options.namespace);
  const first = await read();
  if (options.once) {
    io.write(frame(first, options, color, io.now()));
    return;
  }
  const interrupted = io.interrupted.then(() => 'stop' as const);
  for (let view: BalancerView | Error = first; ;) {
    const text = view instanceof Error ? `ferry: ${view.message}; trying again every ${options.interval} s\n` : frame(view, options, color, io.now());
    io.write(io.isTTY ? `${CLEAR}${text}` : text);
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([interrupted, new Promise<'next'>((resolve) => (timer = setTimeout(() => resolve('next'), options.interval * 1000)))]);
    clearTimeout(timer);
    if (next === 'stop') return;
    view = await read().catch((error: Error) => error);
  }
}

/** The terminal's TopIO: stdout, and Ctrl-C (SIGINT) as the way to stop. */
export function processIO(): TopIO {
  return {
    write: (text) => process.stdout.write(text),
    isTTY: Boolean(process.stdout.isTTY),
    env: process.env,
    interrupted: new Promise((resolve) => process.once('SIGINT', () => resolve())),
    now: Date.now,
  };
}
