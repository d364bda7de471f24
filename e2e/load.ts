// An open-loop load: new TCP connections at a fixed rate for a bounded time, whatever the answers
// take, as clients that do not wait for each other. Prints one JSON line per request:
// {"at": ms since start, "ms": latency, "server": address} (or "error").
//   node dist/e2e/load.js --host H --port P --rate 240 --seconds 20
import { connect } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { host: { type: 'string' }, port: { type: 'string' }, rate: { type: 'string', default: '100' }, seconds: { type: 'string', default: '10' }, 'timeout-ms': { type: 'string', default: '10000' } } });
const rate = Number(values.rate);
const total = Math.round(rate * Number(values.seconds));
const started = performance.now();
const lines: string[] = [];

function request(): Promise<void> {
  const at = performance.now() - started;
  return new Promise((resolve) => {
    const socket = connect({ host: values.host!, port: Number(values.port) });
    let data = '';
    const done = (result: object) => {
      socket.destroy();
      lines.push(JSON.stringify({ at: Math.round(at), ms: Math.round((performance.now() - started - at) * 10) / 10, ...result }));
      resolve();
    };
    socket.setTimeout(Number(values['timeout-ms']), () => done({ error: 'ETIMEDOUT' }));
    socket.on('error', (error: NodeJS.ErrnoException) => done({ error: error.code ?? error.message }));
    socket.on('data', (chunk) => {
      data += chunk;
      if (data.includes('\n')) done({ server: (JSON.parse(data.slice(0, data.indexOf('\n'))) as { server: string }).server });
    });
  });
}

const pending: Promise<void>[] = [];
for (let i = 0; i < total; i++) {
  const due = (i / rate) * 1000;
  const wait = due - (performance.now() - started);
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  pending.push(request());
}
await Promise.all(pending);
process.stdout.write(`${lines.join('\n')}\n`);
