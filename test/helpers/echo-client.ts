// A client for e2e/echo-server.js, run with `node --input-type=module -e ECHO_CLIENT proto host port count`.
// The client: N attempts, one new socket each, one JSON line per attempt. TCP records what
// getpeername() says (socket.remoteAddress); UDP sends unconnected datagrams and records the reply's
// source. udp-socket sends every datagram from one socket. The echo server answers with its port,
// which names the endpoint, and the client address it saw.
export const ECHO_CLIENT = `
const [proto, host, port, count] = process.argv.slice(1);
const net = await import('node:net'), dgram = await import('node:dgram');
const shared = proto === 'udp-socket' ? dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4') : undefined;
const once = () => new Promise((resolve) => {
  const done = (result) => { clearTimeout(timer); if (!shared) { socket.close?.(); socket.destroy?.(); } else socket.removeAllListeners(); resolve(result); };
  const timer = setTimeout(() => done({ ok: false, error: 'ETIMEDOUT' }), 1500);
  const answer = (data, peer) => { const reply = JSON.parse(String(data).split('\\n')[0]); done({ ok: true, endpointPort: reply.port, server: reply.server, seenAs: reply.peer, ...peer }); };
  let socket;
  if (proto === 'tcp') {
    socket = net.connect({ host, port: Number(port) });
    socket.on('error', (error) => done({ ok: false, error: error.code }));
    socket.once('data', (data) => answer(data, { peer: socket.remoteAddress, peerPort: socket.remotePort }));
  } else {
    socket = shared ?? dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    socket.on('error', (error) => done({ ok: false, error: error.code }));
    socket.on('message', (data, rinfo) => answer(data, { peer: rinfo.address, peerPort: rinfo.port }));
    socket.send('hello', Number(port), host, (error) => error && done({ ok: false, error: error.code }));
  }
});
for (let i = 0; i < Number(count); i++) console.log(JSON.stringify(await once()));
shared?.close();
`;

/** One attempt's outcome, one JSON line each. */
export interface Attempt {
  ok: boolean;
  /** The endpoint's port and address, and the client address it saw (its `peer`). */
  endpointPort?: number;
  server?: string;
  seenAs?: string;
  /** Whom the client thinks it talked to. */
  peer?: string;
  peerPort?: number;
  error?: string;
}
