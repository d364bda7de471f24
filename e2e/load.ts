// An open-loop load: new TCP connections at a fixed rate for a bounded time, whatever the answers
// take, as clients that do not wait for each other. Prints one JSON line per request as it ends:
// {"t": Unix ms when it started, "at": ms since the load started, "ms": latency, "server": address}
// (or "error"). A request ends with the greeting, or, when a one-worker echo server greets with
// "queued" (echo-server.ts --serial-ms), when that server has served it and closes.
// With --until-stdin-ends the load also stops when its standard input ends: no new connections, and
// those still open end as soon as they know their server.
//   node dist/e2e/load.js --host H --port P --rate 240 --seconds 20 [--until-stdin-ends]
import { connect } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string' }, port: { type: 'string' }, rate: { type: 'string', default: '100' }, seconds: { type: 'string', default: '10' },
    'timeout-ms': { type: 'string', default: '10000' }, 'until-stdin-ends': { type: 'boolean', default: false },
  },
});
const rate = Number(values.rate);
const total = Math.round(rate * Number(values.seconds));
const started = performance.now();
let stopping = false;
const stopped = new Set<() => void>();

if (values['until-stdin-ends']) {
  process.stdin.on('end', () => {
    stopping = true;
    for (const stop of stopped) stop();
  }).resume();
}

function request(): Promise<void> {
  const at = performance.now() - started;
  const t = Date.now();
  return new Promise((resolve) => {
    const socket = connect({ host: values.host!, port: Number(values.port) });
    let data = '';
    let server: string | undefined;
    let finished = false;
    const done = (result: object) => {
      if (finished) return;
      finished = true;
      stopped.delete(stop);
      socket.destroy();
      process.stdout.write(`${JSON.stringify({ t, at: Math.round(at), ms: Math.round((performance.now() - started - at) * 10) / 10, ...result })}\n`);
      resolve();
    };
    const stop = () => {
      if (server !== undefined) done({ server });
    };
    stopped.add(stop);
    socket.setTimeout(Number(values['timeout-ms']), () => done({ ...(server === undefined ? {} : { server }), error: 'ETIMEDOUT' }));
    socket.on('error', (error: NodeJS.ErrnoException) => done({ ...(server === undefined ? {} : { server }), error: error.code ?? error.message }));
    socket.on('end', () => done(server === undefined ? { error: 'closed before a greeting' } : { server }));
    socket.on('data', (chunk) => {
      data += chunk;
      if (server !== undefined || !data.includes('\n')) return;
      const greeting = JSON.parse(data.slice(0, data.indexOf('\n'))) as { server: string; queued?: boolean };
      server = greeting.server;
      if (!greeting.queued || stopping) done({ server });
    });
  });
}

const pending: Promise<void>[] = [];
for (let i = 0; i < total && !stopping; i++) {
  const due = (i / rate) * 1000;
  const wait = due - (performance.now() - started);
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  if (stopping) break;
  pending.push(request());
}
await Promise.all(pending);
if (values['until-stdin-ends']) process.stdin.destroy();
