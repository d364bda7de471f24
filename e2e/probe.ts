// A client that opens N new connections (TCP) or sends N datagrams from new sockets (UDP) and prints
// one JSON line per attempt, as it ends: {"ok":true,"server":..,"peer":..} or {"ok":false,"error":"ECONNREFUSED",..}.
// --count 0 keeps going until its standard input ends (a test stops it when the event it waits for
// has happened), then finishes the attempt in progress.
// With --hold-ms, each TCP connection is held open that long and must still echo a line afterwards
// (established connections must survive rule updates); --hold-ms stdin holds it until standard input
// ends and prints {"holding":true,"server":..} once the connection is established. With --reuse, UDP
// sends every datagram from one socket (one conntrack flow), --interval-ms apart.
//   node dist/e2e/probe.js --proto tcp|udp --host H --port P [--count N] [--timeout-ms T] [--hold-ms H|stdin]
import { createSocket, type Socket } from 'node:dgram';
import { connect, isIPv6 } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    proto: { type: 'string', default: 'tcp' }, host: { type: 'string' }, port: { type: 'string' },
    count: { type: 'string', default: '1' }, 'timeout-ms': { type: 'string', default: '2000' }, 'hold-ms': { type: 'string', default: '0' },
    reuse: { type: 'boolean', default: false }, 'interval-ms': { type: 'string', default: '0' },
  },
});
const host = values.host!;
const port = Number(values.port);
const timeout = Number(values['timeout-ms']);
const count = Number(values.count);
const holdUntilStdin = values['hold-ms'] === 'stdin';
const hold = holdUntilStdin ? 0 : Number(values['hold-ms']);

// Standard input ending is the signal to stop (--count 0) or to release a held connection (--hold-ms stdin).
let stdinEnded = false;
const stdinEnd = new Promise<void>((resolve) => {
  if (count !== 0 && !holdUntilStdin) return;
  process.stdin.on('end', () => {
    stdinEnded = true;
    resolve();
  }).resume();
});

interface Attempt { ok: boolean; server?: string; peer?: string; error?: string; ms: number }

function tcp(): Promise<Attempt> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let data = '';
    let greeting: Omit<Attempt, 'ms'> | undefined;
    const done = (attempt: Omit<Attempt, 'ms'>) => {
      socket.destroy();
      resolve({ ...attempt, ms: Math.round(performance.now() - started) });
    };
    const check = () => {
      socket.setTimeout(timeout, () => done({ ok: false, error: 'ETIMEDOUT after hold' }));
      socket.write('still-there\n');
    };
    socket.setTimeout(timeout, () => done({ ok: false, error: 'ETIMEDOUT' }));
    socket.on('error', (error: NodeJS.ErrnoException) => done({ ok: false, error: error.code ?? error.message }));
    socket.on('data', (chunk) => {
      data += chunk;
      if (!greeting && data.includes('\n')) {
        const first: Omit<Attempt, 'ms'> = { ok: true, ...JSON.parse(data.slice(0, data.indexOf('\n'))) };
        greeting = first;
        data = data.slice(data.indexOf('\n') + 1);
        if (hold === 0 && !holdUntilStdin) return done(first);
        socket.setTimeout(0);
        if (holdUntilStdin) {
          console.log(JSON.stringify({ holding: true, server: first.server }));
          void stdinEnd.then(check);
        } else {
          setTimeout(check, hold);
        }
      }
      if (greeting && data.includes('still-there\n')) done(greeting);
    });
  });
}

/** One datagram and its answer; a fresh socket unless one is given (then it stays open). */
function udp(shared?: Socket): Promise<Attempt> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = shared ?? createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => done({ ok: false, error: 'ETIMEDOUT' }), timeout);
    const onError = (error: NodeJS.ErrnoException) => done({ ok: false, error: error.code ?? error.message });
    const onMessage = (message: Buffer) => done({ ok: true, ...JSON.parse(String(message)) });
    const done = (attempt: Omit<Attempt, 'ms'>) => {
      clearTimeout(timer);
      socket.off('error', onError).off('message', onMessage);
      if (!shared) socket.close();
      resolve({ ...attempt, ms: Math.round(performance.now() - started) });
    };
    // A connected socket is told about ICMP port unreachable, as ECONNREFUSED.
    socket.on('error', onError).on('message', onMessage);
    if (shared) socket.send('ping');
    // A refused connect() (eBPF's socket programs refuse a Service without endpoints there) reaches the callback, not 'error'.
    else socket.connect(port, host, ((error?: NodeJS.ErrnoException) => (error ? onError(error) : socket.send('ping'))) as () => void);
  });
}

let sharedAborted = false;
async function connectedSocket(): Promise<Socket> {
  const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
  sharedAborted = false;
  socket.on('error', () => (sharedAborted = true));
  await new Promise<void>((resolve) => socket.connect(port, host, resolve));
  return socket;
}

let shared = values.reuse && values.proto === 'udp' ? await connectedSocket() : undefined;
for (let i = 0; count === 0 ? !stdinEnded : i < count; i++) {
  if (i > 0) await new Promise((resolve) => setTimeout(resolve, Number(values['interval-ms'])));
  // A shared socket that was aborted (the eBPF backend aborts those connected to a gone endpoint) is
  // connected again, as a resolver would.
  if (shared && sharedAborted) {
    shared.close();
    shared = await connectedSocket();
  }
  console.log(JSON.stringify(values.proto === 'udp' ? await udp(shared) : await tcp()));
}
shared?.close();
if (count === 0 || holdUntilStdin) process.stdin.destroy();
