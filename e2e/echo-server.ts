// The server every endpoint pod runs: answers each TCP connection and UDP datagram with who it is and
// whom it saw, so a test can tell which endpoint answered and whether the client address was kept.
// With --serial-ms S it behaves like a server with one worker: each connection is greeted at once
// (with "queued":true, so the client knows at once which endpoint holds it), waits for the ones before
// it and then takes S ms (a capacity of 1000/S per second), and is closed when served; so an
// overloaded endpoint holds more and more open connections.
//   node dist/e2e/echo-server.js --port 8080 [--port 9090] [--delay-ms N] [--serial-ms S]
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', multiple: true }, 'delay-ms': { type: 'string', default: '0' }, 'serial-ms': { type: 'string', default: '0' } } });
const ports = (values.port ?? []).map(Number);
const delay = Number(values['delay-ms']);
const serial = Number(values['serial-ms']);
let busyUntil = 0;
/** How long the single worker's queue makes a new connection wait, its own service time included. */
const queue = () => {
  const now = performance.now();
  busyUntil = Math.max(now, busyUntil) + serial;
  return busyUntil - now;
};

/** IPv4 clients of a dual-stack socket appear as ::ffff:a.b.c.d. */
const plain = (address: string | undefined) => (address ?? '').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
const answer = (server: string | undefined, peer: string | undefined, port: number, extra: object = {}) =>
  `${JSON.stringify({ server: plain(server), peer: plain(peer), port, ...extra })}\n`;

let listening = 0;
const ready = () => {
  listening += 1;
  if (listening === ports.length * 2) console.log('ready');
};

for (const port of ports) {
  createServer((socket) => {
    socket.on('error', () => socket.destroy());
    if (serial > 0) {
      socket.write(answer(socket.localAddress, socket.remoteAddress, port, { queued: true }));
      setTimeout(() => socket.end(), queue());
      return;
    }
    // Greet at once (after the delay), then echo whatever the client sends, for long-lived tests.
    setTimeout(() => socket.write(answer(socket.localAddress, socket.remoteAddress, port)), delay);
    socket.on('data', (data) => socket.write(data));
  }).listen({ port, host: '::', ipv6Only: false }, ready);

  const udp = createSocket({ type: 'udp6', ipv6Only: false });
  udp.on('message', (_message, peer) => {
    setTimeout(() => udp.send(answer(localFor(peer.address), peer.address, port), peer.port, peer.address), delay);
  });
  udp.bind(port, '::', ready);
}

// A UDP socket bound to :: cannot tell which local address a datagram was sent to; the pod has one
// address per family, so report that one.
function localFor(peer: string): string {
  const family = plain(peer).includes(':') ? 'IPv6' : 'IPv4';
  const addresses = Object.values(networkInterfaces()).flat().filter((info) => info && !info.internal && info.family === family && !info.address.startsWith('fe80'));
  return addresses[0]?.address ?? '';
}
