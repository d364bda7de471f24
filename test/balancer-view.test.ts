// The agent's /balancer document (balancer-view.ts), the route that serves it, and `ferry top`'s
// frames (top-command.ts): the table's order and highlighting, --once, -o json, -n, the refresh loop
// and the error when no agent answers.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { balancerView, type BalancerInput, type BalancerView } from '../controlplane/agent/balancer-view.js';
import { close, healthHandler, listen } from '../controlplane/agent/health.js';
import { initialBalanceState } from '../controlplane/balance/balance.js';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { endpointKey } from '../rules/names.js';
import { balancerURL, busiest, fetchBalancer, runTop, topTable, type TopIO, type TopOptions } from '../controlplane/cli/top-command.js';
import { desiredFrontends } from '../rules/frontends.js';
import { ferry } from './helpers/cli.js';
import { clusterState, serviceObject, sliceObject, testConfig } from './helpers/objects.js';

const [busy, idle, far] = ['10.244.1.9', '10.244.1.10', '10.244.2.10'];
const key = (ip: string) => endpointKey('tcp', ip, 8080);
const ESC = '\x1b';

/** node-a's rules for a NodePort Service under externalTrafficPolicy Local (a cluster and a local group), `busy` weighted 0.4. */
function input(overrides: Partial<BalancerInput> = {}): BalancerInput {
  const weights = new Map([[key(busy), 0.4]]);
  const state = clusterState(
    serviceObject({ type: 'NodePort', externalTrafficPolicy: 'Local', externalIPs: ['203.0.113.5'], ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
    sliceObject('web', [{ ip: busy, node: 'node-a' }, { ip: idle, node: 'node-a' }, { ip: far, node: 'node-b' }]),
    serviceObject({ name: 'quiet', namespace: 'other', clusterIPs: ['10.96.0.30'] }),
    sliceObject('quiet', [{ ip: '10.244.3.10', node: 'node-c' }], { namespace: 'other' }),
  );
  return {
    node: 'node-a', backend: 'nftables', balancing: 'least-busy',
    rules: computeNodeRules(state, 'node-a', testConfig, weights), syncedAt: new Date('2025-01-01T00:00:02Z'),
    state: { loads: new Map([[key(busy), 7.25], [key(idle), 0.5], [key(far), 1]]), weights, publishedAt: 0 },
    sample: { at: Date.parse('2025-01-01T00:00:03Z'), connections: new Map([[key(busy), 8], [key(idle), 0], [key(far), 1]]) },
    ...overrides,
  };
}

const web = (view: BalancerView) => view.servicePorts.find((port) => port.id === 'default/web:http/tcp')!;

test('the view: per endpoint the sample, the load, the integer weights of the rules and their shares, per group', (t) => {
  const view = balancerView(input());
  t.like(view, { node: 'node-a', backend: 'nftables', balancing: 'least-busy', sampledAt: '2025-01-01T00:00:03.000Z', syncedAt: '2025-01-01T00:00:02.000Z' });
  const port = web(view);
  t.like(port, { namespace: 'default', name: 'web', protocol: 'tcp' });
  t.deepEqual(port.frontends, [
    { kind: 'ClusterIP', address: '10.96.0.20', port: 80 }, { kind: 'External', address: '203.0.113.5', port: 80 }, { kind: 'NodePort', address: '0.0.0.0', port: 30080 },
  ]);
  t.deepEqual(port.endpoints.map((endpoint) => [endpoint.ip, endpoint.onNode, endpoint.connections, endpoint.load, endpoint.balancerWeight]),
    [[busy, true, 8, 7.25, 0.4], [idle, true, 0, 0.5, 1], [far, false, 1, 1, 1]]);
  // Every group's weights are the integers the rules hold, and the shares add up to 1 per group.
  for (const group of ['cluster', 'local'] as const) {
    const rules = port.endpoints.filter((endpoint) => endpoint[group]).map((endpoint) => endpoint[group]!);
    t.is(rules.reduce((sum, share) => sum + share.share, 0), 1);
    t.true(rules.every((share) => Number.isInteger(share.weight)));
  }
  t.true(port.endpoints[0]!.cluster!.share < port.endpoints[1]!.cluster!.share, 'the weighted-down endpoint has the smaller share');
  t.is(port.endpoints[2]!.local, null, 'node-b\'s endpoint is in the cluster group only');
  t.deepEqual(view.servicePorts.map((p) => [p.id, p.family]), [['default/web:http/tcp', 'IPv4'], ['other/quiet:http/tcp', 'IPv4']]);
});

test('the view\'s shares are what `ferry services` reads from the same rules: cluster group at the cluster IP, local group at the node port', (t) => {
  const { rules } = input();
  const port = web(balancerView(input()));
  const frontends = desiredFrontends(rules!).frontends;
  const at = (kind: string) => frontends.find((frontend) => frontend.kind === kind && frontend.service === port.id)!;
  t.deepEqual(at('ClusterIP').endpoints.map((endpoint) => [endpoint.ip, endpoint.probability]), port.endpoints.map((endpoint) => [endpoint.ip, endpoint.cluster!.share]));
  t.deepEqual(at('NodePort').endpoints.map((endpoint) => [endpoint.ip, endpoint.probability]),
    port.endpoints.filter((endpoint) => endpoint.local).map((endpoint) => [endpoint.ip, endpoint.local!.share]));
});

test('the view before the first sync and sample is empty, and endpoints the balancer has not sampled have no load', (t) => {
  t.deepEqual(balancerView({ ...input(), rules: undefined, syncedAt: undefined, sample: undefined }), {
    node: 'node-a', backend: 'nftables', balancing: 'least-busy', sampledAt: null, syncedAt: null, servicePorts: [],
  });
  const port = web(balancerView({ ...input(), state: initialBalanceState, sample: undefined }));
  t.true(port.endpoints.every((endpoint) => endpoint.connections === null && endpoint.load === null && endpoint.balancerWeight === 1));
});

test('the table: busiest port and endpoint first, the busiest highlighted only in colour, local columns where a group has them', (t) => {
  const view = balancerView(input());
  const now = Date.parse('2025-01-01T00:00:05Z');
  const plain = topTable(view, { color: false, now });
  t.false(plain.includes(ESC));
  const lines = plain.split('\n');
  t.regex(lines[0]!, /^node node-a +backend nftables +balancing least-busy +sampled 00:00:03 \(2 s ago\) +synced 00:00:02 \(3 s ago\)$/);
  t.regex(lines[2]!, /^SERVICE PORT +ENDPOINT +CONNECTIONS +LOAD +WEIGHT +SHARE +LOCAL WEIGHT +LOCAL SHARE$/);
  const rows = lines.slice(3).filter(Boolean).map((line) => line.split(/ {2,}/));
  t.deepEqual(rows.filter((row) => row[0] === 'default/web:http/tcp').map((row) => row.slice(1, 4)), [[`${busy}:8080`, '8', '7.3'], [`${far}:8080`, '1', '1.0'], [`${idle}:8080`, '0', '0.5']]);
  t.is(rows[0]![0], 'default/web:http/tcp', 'the busiest port first');
  const share = web(view).endpoints[0]!.cluster!;
  t.deepEqual(rows[0]!.slice(4, 6), [String(share.weight), `${(share.share * 100).toFixed(1)}%`]);
  t.is(rows.at(-1)![0], 'other/quiet:http/tcp');
  t.deepEqual(rows.at(-1)!.slice(4), ['1', '100.0%', '-', '-']);

  const coloured = topTable(view, { color: true, now }).split('\n');
  const highlighted = coloured.filter((line) => line.startsWith('\x1b[1m\x1b[31m'));
  t.is(highlighted.length, 1, 'the busy endpoint, weighted down: red');
  t.true(highlighted[0]!.includes(`${busy}:8080`), highlighted.join('\n'));
  t.true(coloured.some((line) => line.startsWith('\x1b[1mSERVICE PORT')));
  t.false(coloured.some((line) => line.includes(idle) && line.includes('\x1b[31m')));
});

test('the table says what it waits for, highlights nothing under equal load, and has no local columns without local groups', (t) => {
  t.regex(topTable(balancerView({ ...input(), rules: undefined, syncedAt: undefined }), { color: false, now: 0 }), /waiting for the agent's first sync/);
  const even = balancerView({ ...input(), state: { ...input().state, loads: new Map([[key(busy), 2], [key(idle), 2], [key(far), 2]]) } });
  t.is(busiest(web(even)).size, 0);
  const quiet = { ...even, servicePorts: even.servicePorts.filter((port) => port.namespace === 'other') };
  t.notRegex(topTable(quiet, { color: false, now: 0 }), /LOCAL/);
});

async function serve(view: () => object): Promise<{ server: Server; address: string }> {
  const server = await listen('127.0.0.1:0', healthHandler(() => ({ healthy: true, live: true, state: 'synced', lastUpdated: undefined }), { balancer: view }));
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function io(overrides: Partial<TopIO> = {}): TopIO & { output: string[] } {
  const output: string[] = [];
  return { output, write: (text) => output.push(text), isTTY: false, env: {}, interrupted: new Promise(() => {}), now: () => Date.parse('2025-01-01T00:00:05Z'), ...overrides };
}

const options = (address: string, more: Partial<TopOptions> = {}): TopOptions => ({ metricsAddress: address, output: 'table', interval: 2, once: true, ...more });

test('/balancer serves the document; top --once prints one table or the JSON document, -n keeps one namespace', async (t) => {
  const view = balancerView(input());
  const { server, address } = await serve(() => view);
  t.teardown(() => close(server));
  t.deepEqual(await fetchBalancer(address), JSON.parse(JSON.stringify(view)) as BalancerView);
  const table = io({ isTTY: true });
  await runTop(options(address), table);
  t.is(table.output.length, 1);
  t.true(table.output[0]!.split('\n').some((line) => line.startsWith(`${ESC}[1m${ESC}[31mdefault/web:http/tcp`) && line.includes(`${busy}:8080`)), 'a terminal gets colour');
  t.false(table.output[0]!.startsWith('\x1b[H'), '--once does not clear the screen');
  const noColor = io({ isTTY: true, env: { NO_COLOR: '1' } });
  await runTop(options(address), noColor);
  t.false(noColor.output[0]!.includes(ESC));
  const json = io();
  await runTop(options(address, { output: 'json', namespace: 'other' }), json);
  const document = JSON.parse(json.output[0]!) as BalancerView;
  t.deepEqual(document.servicePorts.map((port) => port.id), ['other/quiet:http/tcp']);
  t.is(document.node, 'node-a');
  await t.throwsAsync(runTop(options(address, { namespace: 'x', allNamespaces: true }), io()), { message: '-n and -A exclude each other' });
});

test('top refreshes until interrupted, clearing the screen between frames on a terminal, and says when the agent stops answering', async (t) => {
  let answers = 0;
  let failing = false;
  const view = balancerView(input());
  const server = createServer((request, response) => {
    answers += 1;
    if (failing) return void response.writeHead(500).end();
    response.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(view));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => close(server));
  let interrupt = () => {};
  const terminal = io({ isTTY: true, interrupted: new Promise((resolve) => (interrupt = resolve)) });
  const write = terminal.write;
  // The events: a frame written; after the second the agent fails, after the third frame (the error) Ctrl-C.
  terminal.write = (text) => {
    write(text);
    if (terminal.output.length === 2) failing = true;
    if (terminal.output.length === 3) interrupt();
  };
  await runTop(options(`127.0.0.1:${(server.address() as AddressInfo).port}`, { once: false, interval: 0.01 }), terminal);
  t.is(terminal.output.length, 3);
  t.is(answers, 3);
  t.true(terminal.output.every((frame) => frame.startsWith('\x1b[H\x1b[2J')));
  t.true(terminal.output[2]!.startsWith(`${ESC}[H${ESC}[2Jferry: `));
  t.regex(terminal.output[2]!, /ferry: cannot read the balancer from the agent at 127\.0\.0\.1:\d+ \(HTTP 500\).*; trying again every 0\.01 s\n$/);
});

test('the metrics address: HOST:PORT, [IPv6]:PORT or a URL; an agent that does not answer is one line naming the address', async (t) => {
  t.is(balancerURL('127.0.0.1:10249'), 'http://127.0.0.1:10249/balancer');
  t.is(balancerURL('[::1]:10249'), 'http://[::1]:10249/balancer');
  t.is(balancerURL('http://node-a:10249/'), 'http://node-a:10249/balancer');
  t.throws(() => balancerURL('node-a'), { message: /--metrics-address node-a: expected HOST:PORT/ });
  // A port that was just free: nobody listens there.
  const { server, address } = await serve(() => ({}));
  await close(server);
  await t.throwsAsync(fetchBalancer(address), { message: new RegExp(`^cannot read the balancer from the agent at ${address} \\(connection refused at http://${address}/balancer\\)`) });
  const old = await listen('127.0.0.1:0', healthHandler(() => ({ healthy: true, live: true, state: 'synced', lastUpdated: undefined })));
  t.teardown(() => close(old));
  await t.throwsAsync(fetchBalancer(`127.0.0.1:${(old.address() as AddressInfo).port}`), { message: /HTTP 404: this agent does not serve \/balancer/ });
});

test('ferry top --once against no agent: exit 2 and one line on stderr naming the address', async (t) => {
  const { server, address } = await serve(() => ({}));
  await close(server);
  const { exitCode, stdout, stderr } = await ferry(['top', '--once', '--metrics-address', address]);
  t.is(exitCode, 2);
  t.is(stdout, '');
  t.regex(stderr, new RegExp(`^ferry: cannot read the balancer from the agent at ${address} .*--metrics-address\\)$`));
  const help = await ferry(['top', '--help']);
  t.regex(help.stdout, /Examples:\n {2}ferry top\n/);
});
