// A client that opens N new connections (TCP) or sends N datagrams from new sockets (UDP) and prints
// one JSON line per attempt: {"ok":true,"server":..,"peer":..} or {"ok":false,"error":"ECONNREFUSED",..}.
// With --hold-ms, each TCP connection is held open that long and must still echo a line afterwards
// (established connections must survive rule updates).
//   node dist/e2e/probe.js --proto tcp|udp --host H --port P [--count N] [--timeout-ms T] [--hold-ms H]
import { createSocket } from 'node:dgram';
import { connect, isIPv6 } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    proto: { type: 'string', default: 'tcp' }, host: { type: 'string' }, port: { type: 'string' },
    count: { type: 'string', default: '1' }, 'timeout-ms': { type: 'string', default: '2000' }, 'hold-ms': { type: 'string', default: '0' },
  },
});
const host = values.host!;
const port = Number(values.port);
const timeout = Number(values['timeout-ms']);
const hold = Number(values['hold-ms']);

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
    socket.setTimeout(timeout, () => done({ ok: false, error: 'ETIMEDOUT' }));
    socket.on('error', (error: NodeJS.ErrnoException) => done({ ok: false, error: error.code ?? error.message }));
    socket.on('data', (chunk) => {
      data += chunk;
      if (!greeting && data.includes('\n')) {
        const first: Omit<Attempt, 'ms'> = { ok: true, ...JSON.parse(data.slice(0, data.indexOf('\n'))) };
        greeting = first;
        data = data.slice(data.indexOf('\n') + 1);
        if (hold === 0) return done(first);
        socket.setTimeout(0);
        setTimeout(() => {
          socket.setTimeout(timeout, () => done({ ok: false, error: 'ETIMEDOUT after hold' }));
          socket.write('still-there\n');
        }, hold);
      }
      if (greeting && data.includes('still-there\n')) done(greeting);
    });
  });
}

function udp(): Promise<Attempt> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => done({ ok: false, error: 'ETIMEDOUT' }), timeout);
    const done = (attempt: Omit<Attempt, 'ms'>) => {
      clearTimeout(timer);
      socket.close();
      resolve({ ...attempt, ms: Math.round(performance.now() - started) });
    };
    // A connected socket is told about ICMP port unreachable, as ECONNREFUSED.
    socket.on('error', (error: NodeJS.ErrnoException) => done({ ok: false, error: error.code ?? error.message }));
    socket.on('message', (message) => done({ ok: true, ...JSON.parse(String(message)) }));
    socket.connect(port, host, () => socket.send('ping'));
  });
}

for (let i = 0; i < Number(values.count); i++) {
  console.log(JSON.stringify(values.proto === 'udp' ? await udp() : await tcp()));
}
