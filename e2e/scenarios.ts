// The e2e scenarios: real traffic through ferry's rules on a three-node cluster, written against the
// ClusterDriver interface so that the namespace cluster and the Vagrant cluster run the same code.
import type { ExecutionContext } from 'ava';
import type { ClusterDriver, Host, NodeHost, PodHost, ProbeOptions, ProbeResult } from './driver.js';
import type { BackendName } from '../dataplane/backend-names.js';

/** The pods every scenario can use: echo servers on 8080 and plain clients, spread over three nodes. */
export const clusterSpec = {
  nodes: 3,
  externalClients: 2,
  pods: [
    { name: 'web-1', node: 'node-a', ports: [8080] },
    { name: 'web-2', node: 'node-b', ports: [8080] },
    { name: 'web-3', node: 'node-c', ports: [8080] },
    { name: 'web-4', node: 'node-b', ports: [8080] },
    { name: 'web-5', node: 'node-c', ports: [8080] },
    { name: 'client-a', node: 'node-a' },
    { name: 'client-b', node: 'node-b' },
    { name: 'client-c', node: 'node-c' },
  ],
  // Two zones, as topology hints see them: node-a alone in zone-a, node-b and node-c in zone-b.
  zones: { 'node-a': 'zone-a', 'node-b': 'zone-b', 'node-c': 'zone-b' } as Readonly<Record<string, string>>,
};

interface Scenario {
  title: string;
  run(c: ClusterDriver, t: ExecutionContext, backend: BackendName): Promise<void>;
}

const HTTP = { name: 'http', port: 8080 };
const DNS = { name: 'dns', port: 8080, protocol: 'UDP' };

/** A Service in namespace default with TCP port 80 (http) and UDP port 53 (dns) to the pods' 8080. */
function service(name: string, clusterIPs: string[], spec: Record<string, unknown> = {}, status?: object): object {
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' },
    spec: {
      type: 'ClusterIP', clusterIP: clusterIPs[0], clusterIPs, ipFamilies: clusterIPs.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4')),
      ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }, { name: 'dns', port: 53, protocol: 'UDP', targetPort: 8080 }],
      ...spec,
    },
    ...(status ? { status } : {}),
  };
}

const nodePorts = (tcp: number, udp: number) => [
  { name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: tcp },
  { name: 'dns', port: 53, protocol: 'UDP', targetPort: 8080, nodePort: udp },
];

function pod(c: ClusterDriver, name: string): PodHost {
  return c.pods.get(name) ?? (() => { throw new Error(`no pod ${name}`); })();
}
function node(c: ClusterDriver, name: string): NodeHost {
  return c.nodes.get(name) ?? (() => { throw new Error(`no node ${name}`); })();
}
const ips = (c: ClusterDriver, names: string[], family: 'ipv4' | 'ipv6' = 'ipv4') => names.map((name) => pod(c, name)[family]).sort();
const servers = (results: ProbeResult[]) => [...new Set(results.map((result) => result.server ?? `failed: ${result.error}`))].sort();
const failures = (results: ProbeResult[]) => results.filter((result) => !result.ok);

// Checks that every one of k endpoints answers count on n uniform choices missing none; by the union
// bound P(some endpoint is never chosen) ≤ k (1 - 1/k)^n, which each count keeps under 1e-7.
const EVERY_OF_2 = 30; // 2 · 2^-30 ≈ 2e-9
const EVERY_OF_3 = 45; // 3 · (2/3)^45 ≈ 4e-8
const EVERY_OF_4 = 65; // 4 · (3/4)^65 ≈ 3e-8
const EVERY_OF_5 = 100; // 5 · (4/5)^100 ≈ 1e-9

/**
 * Connections that keep coming until `stop`: probes of `batch` connections, one after another, through
 * any ClusterDriver. `batchAfter()` resolves once a whole batch has run after the call, so a test knows
 * that traffic flowed under the rules it just applied.
 */
function keepProbing(c: ClusterDriver, from: Host, options: ProbeOptions, batch = 10) {
  const results: ProbeResult[][] = [];
  let started = 0;
  let stopped = false;
  const waiting = new Set<() => void>();
  const running = (async () => {
    while (!stopped) {
      started += 1;
      results.push(await c.probe(from, { ...options, count: batch }));
      for (const wake of waiting) wake();
    }
  })();
  // A probe that throws ends the flow; whoever waits for a batch hears of it.
  const ended = running.then(() => {
    throw new Error('the traffic stopped');
  });
  void ended.catch(() => {});
  return {
    async batchAfter(): Promise<ProbeResult[]> {
      const index = started;
      await Promise.race([ended, new Promise<void>((resolve) => {
        const wake = () => {
          if (results.length > index) {
            waiting.delete(wake);
            resolve();
          }
        };
        waiting.add(wake);
        wake();
      })]);
      return results[index]!;
    },
    async stop(): Promise<ProbeResult[]> {
      stopped = true;
      await running;
      return results.flat();
    },
  };
}

export const scenarios: Scenario[] = [
  {
    title: '1. ClusterIP from a pod on the same node, a pod on another node and the node itself; every endpoint serves; no SNAT between pods',
    async run(c, t, backend) {
      await c.apply([service('web', ['10.96.1.10']), ...c.endpointSlices('web', ['web-1', 'web-2', 'web-3'], [HTTP, DNS])], backend);
      for (const proto of ['tcp', 'udp'] as const) {
        const port = proto === 'tcp' ? 80 : 53;
        for (const client of ['client-a', 'client-b']) {
          const results = await c.probe(pod(c, client), { proto, host: '10.96.1.10', port, count: EVERY_OF_3 });
          t.deepEqual(failures(results), [], `${proto} from ${client}`);
          t.deepEqual(servers(results), ips(c, ['web-1', 'web-2', 'web-3']), `${proto} from ${client}: endpoints on all three nodes answer`);
          t.true(results.every((result) => result.peer === pod(c, client).ipv4), `${proto} from ${client}: the endpoint sees the pod's own address`);
        }
        const fromNode = await c.probe(node(c, 'node-a'), { proto, host: '10.96.1.10', port, count: 10 });
        t.deepEqual(failures(fromNode), [], `${proto} from the node itself`);
      }
    },
  },
  {
    title: '2. NodePort from an external client to every node, also a node without a local endpoint, with SNAT',
    async run(c, t, backend) {
      await c.apply([service('web-np', ['10.96.1.20'], { type: 'NodePort', ports: nodePorts(30020, 30021) }),
        ...c.endpointSlices('web-np', ['web-1'], [HTTP, DNS])], backend);
      const external = c.externals[0]!;
      for (const target of c.nodes.values()) {
        for (const proto of ['tcp', 'udp'] as const) {
          const results = await c.probe(external, { proto, host: target.ipv4, port: proto === 'tcp' ? 30020 : 30021, count: 5 });
          t.deepEqual(failures(results), [], `${proto} via ${target.name}`);
          t.deepEqual(servers(results), ips(c, ['web-1']), `${proto} via ${target.name}`);
          t.true(results.every((result) => result.peer !== external.ipv4), `${proto} via ${target.name}: masqueraded under the Cluster policy`);
        }
      }
    },
  },
  {
    title: '3. externalTrafficPolicy Local keeps the client IP and nodes without a local endpoint drop; internalTrafficPolicy Local',
    async run(c, t, backend) {
      await c.apply([
        service('web-local', ['10.96.1.30'], { type: 'NodePort', externalTrafficPolicy: 'Local', ports: nodePorts(30030, 30031) }),
        ...c.endpointSlices('web-local', ['web-1', 'web-3'], [HTTP, DNS]),
        service('web-itp', ['10.96.1.31'], { internalTrafficPolicy: 'Local' }),
        ...c.endpointSlices('web-itp', ['web-1', 'web-2'], [HTTP, DNS]),
      ], backend);
      const external = c.externals[0]!;
      for (const [target, expected] of [['node-a', 'web-1'], ['node-c', 'web-3']] as const) {
        for (const proto of ['tcp', 'udp'] as const) {
          const results = await c.probe(external, { proto, host: node(c, target).ipv4, port: proto === 'tcp' ? 30030 : 30031, count: 5 });
          t.deepEqual(failures(results), [], `${proto} via ${target}`);
          t.deepEqual(servers(results), ips(c, [expected]), `${proto} via ${target}: only the local endpoint`);
          t.true(results.every((result) => result.peer === external.ipv4), `${proto} via ${target}: the client address is preserved`);
        }
      }
      const dropped = await c.probe(external, { proto: 'tcp', host: node(c, 'node-b').ipv4, port: 30030, count: 1, timeoutMs: 1500 });
      t.is(dropped[0]!.error, 'ETIMEDOUT', 'node-b has no local endpoint and drops outside traffic');
      const podOnB = await c.probe(pod(c, 'client-b'), { proto: 'tcp', host: '10.96.1.30', port: 80, count: 10 });
      t.deepEqual(failures(podOnB), [], 'pods on node-b still reach the Service through its cluster IP');

      const itp = await c.probe(pod(c, 'client-a'), { proto: 'tcp', host: '10.96.1.31', port: 80, count: 20 });
      t.deepEqual(servers(itp), ips(c, ['web-1']), 'internalTrafficPolicy Local: only the endpoint on the client\'s node');
      const itpNone = await c.probe(pod(c, 'client-c'), { proto: 'tcp', host: '10.96.1.31', port: 80, count: 1, timeoutMs: 1500 });
      t.is(itpNone[0]!.error, 'ETIMEDOUT', 'internalTrafficPolicy Local: a node without a local endpoint drops');
    },
  },
  {
    title: '4. externalIPs and load-balancer IPs routed to a node; loadBalancerSourceRanges allow and deny, and fail closed',
    async run(c, t, backend) {
      const [allowed, denied] = c.externals as [Host, Host];
      await c.apply([
        service('web-lb', ['10.96.1.40'], {
          type: 'LoadBalancer', externalIPs: ['203.0.113.10'], loadBalancerSourceRanges: [`${allowed.ipv4}/32`], ports: nodePorts(30040, 30041),
        }, { loadBalancer: { ingress: [{ ip: '198.51.100.10' }] } }),
        ...c.endpointSlices('web-lb', ['web-2'], [HTTP, DNS]),
        // Source ranges of the other family only: ferry fails closed for IPv4 (kube-proxy would open it to all).
        service('web-lb-v6-ranges', ['10.96.1.41'], {
          type: 'LoadBalancer', loadBalancerSourceRanges: ['fd00:ffff::/64'], ports: nodePorts(30042, 30043),
        }, { loadBalancer: { ingress: [{ ip: '198.51.100.11' }] } }),
        ...c.endpointSlices('web-lb-v6-ranges', ['web-2'], [HTTP, DNS]),
      ], backend);
      for (const via of ['node-a', 'node-c']) {
        for (const cidr of ['203.0.113.0/24', '198.51.100.0/24']) await c.routeVia(allowed, cidr, node(c, via));
        for (const host of ['203.0.113.10', '198.51.100.10']) {
          const results = await c.probe(allowed, { proto: 'tcp', host, port: 80, count: 3 });
          t.deepEqual(servers(results), ips(c, ['web-2']), `${host} via ${via}`);
        }
      }
      const closed = await c.probe(allowed, { proto: 'tcp', host: '198.51.100.11', port: 80, count: 1, timeoutMs: 1500 });
      t.is(closed[0]!.error, 'ETIMEDOUT', 'ranges given but none of the family: dropped, not opened');
      const blocked = await c.probe(denied, { proto: 'tcp', host: '198.51.100.10', port: 80, count: 1, timeoutMs: 1500 });
      t.is(blocked[0]!.error, 'ETIMEDOUT', 'a source outside loadBalancerSourceRanges is dropped');
      const externalIP = await c.probe(denied, { proto: 'tcp', host: '203.0.113.10', port: 80, count: 2 });
      t.deepEqual(failures(externalIP), [], 'source ranges restrict the load-balancer IP only, not externalIPs');
    },
  },
  {
    title: '5. sessionAffinity ClientIP: a client keeps its endpoint, other clients spread',
    async run(c, t, backend) {
      // Two Services, so that the spread is seen on 16 first choices: eight clients all on one of three
      // endpoints has probability 3 · (1/3)^8 ≈ 5e-4 per Service, both at once 2e-7.
      const sticky = (name: string, ip: string) => [service(name, [ip], { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }),
        ...c.endpointSlices(name, ['web-1', 'web-2', 'web-3'], [HTTP, DNS])];
      await c.apply([...sticky('web-sticky', '10.96.1.50'), ...sticky('web-sticky-2', '10.96.1.51')], backend);
      const sources: Host[] = [...['client-a', 'client-b', 'client-c'].map((name) => pod(c, name)), ...c.nodes.values(), ...c.externals];
      const spread: number[] = [];
      for (const host of ['10.96.1.50', '10.96.1.51']) {
        const firstPicks = new Set<string>();
        for (const source of sources) {
          const results = await c.probe(source, { proto: 'tcp', host, port: 80, count: 8 });
          t.deepEqual(failures(results), [], `${host} from ${source.name}`);
          t.is(servers(results).length, 1, `${source.name} keeps one endpoint of ${host}`);
          firstPicks.add(results[0]!.server!);
        }
        spread.push(firstPicks.size);
      }
      t.true(spread.some((size) => size >= 2), `clients spread over endpoints: ${spread.join(' and ')} endpoints chosen`);
    },
  },
  {
    title: '6. Hairpin: a pod reaching itself through its Service is answered, masqueraded (ebpf: it reaches itself directly)',
    async run(c, t, backend) {
      await c.apply([service('web-self', ['10.96.1.60']), ...c.endpointSlices('web-self', ['web-1'], [HTTP, DNS])], backend);
      const self = pod(c, 'web-1');
      for (const proto of ['tcp', 'udp'] as const) {
        const results = await c.probe(self, { proto, host: '10.96.1.60', port: proto === 'tcp' ? 80 : 53, count: 3 });
        t.deepEqual(failures(results), [], proto);
        // The rule backends send it out and back through the node, masqueraded so that the reply
        // returns the same way; eBPF's connect() goes to the pod's own address, never leaving the pod.
        if (backend === 'ebpf') t.true(results.every((result) => result.server === self.ipv4 && result.peer === self.ipv4), `${proto}: the pod itself`);
        else t.true(results.every((result) => result.server === self.ipv4 && result.peer !== self.ipv4), `${proto}: masqueraded to the node`);
      }
    },
  },
  {
    title: '7. No endpoints are refused at once; not-ready endpoints get no new connections; terminating-only still serves; established connections survive updates',
    async run(c, t, backend) {
      const base = [service('web-empty', ['10.96.1.70']), service('web-term', ['10.96.1.72']),
        ...c.endpointSlices('web-term', [{ name: 'web-3', ready: false, serving: true, terminating: true }], [HTTP, DNS])];
      await c.apply([...base, service('web-ready', ['10.96.1.71']), ...c.endpointSlices('web-ready', ['web-1', 'web-2', 'web-3'], [HTTP, DNS])], backend);
      for (const proto of ['tcp', 'udp'] as const) {
        // Refused, not dropped (that would time out), and at once: before TCP's first SYN retransmission
        // after 1 s. The first attempt of a probe process also pays for its start (seconds on a busy
        // machine), so the quickest of three attempts is what tells.
        const refused = await c.probe(pod(c, 'client-a'), { proto, host: '10.96.1.70', port: proto === 'tcp' ? 80 : 53, count: 3, timeoutMs: 3000 });
        t.true(refused.every((result) => result.error === 'ECONNREFUSED') && Math.min(...refused.map((result) => result.ms)) < 1000, `${proto}: ${JSON.stringify(refused)}`);
      }
      const terminating = await c.probe(pod(c, 'client-a'), { proto: 'tcp', host: '10.96.1.72', port: 80, count: 3 });
      t.deepEqual(servers(terminating), ips(c, ['web-3']), 'a Service with only serving, terminating endpoints still serves');

      // A connection held open while web-2 becomes not ready and the rules are rewritten: established
      // before the change is published, checked after every node holds it. A driver that cannot hold
      // a connection until told (Vagrant) holds it for a time instead.
      const update = () => c.apply([...base, service('web-ready', ['10.96.1.71']),
        ...c.endpointSlices('web-ready', ['web-1', { name: 'web-2', ready: false }, 'web-3'], [HTTP, DNS])], backend);
      let held: ProbeResult;
      if (c.holdOpen) {
        const connection = await c.holdOpen(pod(c, 'client-b'), { proto: 'tcp', host: '10.96.1.71', port: 80 });
        await update();
        held = await connection.release();
      } else {
        const holding = c.probe(pod(c, 'client-b'), { proto: 'tcp', host: '10.96.1.71', port: 80, count: 1, holdMs: 2500, timeoutMs: 2000 });
        await sleep(500);
        await update();
        held = (await holding)[0]!;
      }
      const after = await c.probe(pod(c, 'client-a'), { proto: 'tcp', host: '10.96.1.71', port: 80, count: EVERY_OF_2 });
      t.deepEqual(servers(after), ips(c, ['web-1', 'web-3']), 'a not-ready endpoint gets no new connections');
      t.deepEqual(failures([held]), [], 'the established connection survived the rule update');
    },
  },
  {
    title: '8. Endpoint churn 3 -> 1 -> 5 while traffic flows: no request fails',
    async run(c, t, backend) {
      const churn = (pods: string[]) => [service('web-churn', ['10.96.1.80']), ...c.endpointSlices('web-churn', pods, [HTTP, DNS])];
      await c.apply(churn(['web-1', 'web-2', 'web-3']), backend);
      // Traffic flows before, during and after each change: the test moves on when a whole batch of
      // connections has run under the rules just applied, however long that takes on a busy machine.
      const traffic = keepProbing(c, pod(c, 'client-a'), { proto: 'tcp', host: '10.96.1.80', port: 80 });
      t.teardown(() => traffic.stop().then(() => {}, () => {}));
      await traffic.batchAfter();
      await c.apply(churn(['web-1']), backend);
      t.deepEqual(servers(await traffic.batchAfter()), ips(c, ['web-1']), 'scaled down to web-1 alone');
      await c.apply(churn(['web-1', 'web-2', 'web-3', 'web-4', 'web-5']), backend);
      await traffic.batchAfter();
      const results = await traffic.stop();
      t.deepEqual(failures(results), [], `no request failed while endpoints changed (${results.length} requests)`);
      const after = await c.probe(pod(c, 'client-a'), { proto: 'tcp', host: '10.96.1.80', port: 80, count: EVERY_OF_5 });
      t.deepEqual(servers(after), ips(c, ['web-1', 'web-2', 'web-3', 'web-4', 'web-5']), 'all five endpoints serve after scaling up');
    },
  },
  {
    title: '9. Dual-stack: an IPv6 cluster IP and node port work alongside IPv4',
    async run(c, t, backend) {
      await c.apply([service('web-dual', ['10.96.1.90', 'fd00:96::1:90'], { type: 'NodePort', ports: nodePorts(30090, 30091) }),
        ...c.endpointSlices('web-dual', ['web-1', 'web-2'], [HTTP, DNS])], backend);
      const client = pod(c, 'client-c');
      for (const proto of ['tcp', 'udp'] as const) {
        const v6 = await c.probe(client, { proto, host: 'fd00:96::1:90', port: proto === 'tcp' ? 80 : 53, count: EVERY_OF_2 });
        t.deepEqual(servers(v6), ips(c, ['web-1', 'web-2'], 'ipv6'), `${proto} over IPv6`);
        t.true(v6.every((result) => result.peer === client.ipv6), `${proto}: no SNAT over IPv6 either`);
        const v4 = await c.probe(client, { proto, host: '10.96.1.90', port: proto === 'tcp' ? 80 : 53, count: 5 });
        t.deepEqual(failures(v4), [], `${proto} over IPv4`);
      }
      const nodePort = await c.probe(c.externals[0]!, { proto: 'tcp', host: node(c, 'node-b').ipv6, port: 30090, count: 5 });
      t.deepEqual(failures(nodePort), [], 'IPv6 node port from outside');
    },
  },
  {
    title: '10. Topology hints: clients on each node reach only their zone\'s endpoints while every endpoint is hinted, and every endpoint once one is not',
    async run(c, t, backend) {
      const webs = ['web-1', 'web-2', 'web-3', 'web-4', 'web-5'];
      // As the EndpointSlice controller hints them for Topology Aware Routing: each for its own zone.
      const hinted = webs.map((name) => ({ name, zones: [clusterSpec.zones[pod(c, name).node]!] }));
      await c.apply([service('web-zones', ['10.96.1.100']), ...c.endpointSlices('web-zones', hinted, [HTTP, DNS])], backend);
      const probe = (client: string, count: number) => c.probe(pod(c, client), { proto: 'tcp', host: '10.96.1.100', port: 80, count });
      t.deepEqual(servers(await probe('client-a', 20)), ips(c, ['web-1']), 'zone-a: node-a\'s endpoint only');
      for (const client of ['client-b', 'client-c']) {
        t.deepEqual(servers(await probe(client, EVERY_OF_4)), ips(c, ['web-2', 'web-3', 'web-4', 'web-5']), `zone-b from ${client}: node-b's and node-c's endpoints`);
      }
      // One endpoint without a hint (a slice the controller is still updating): the hints stop applying.
      await c.apply([service('web-zones', ['10.96.1.100']), ...c.endpointSlices('web-zones', ['web-1', ...hinted.slice(1)], [HTTP, DNS])], backend);
      t.deepEqual(servers(await probe('client-a', EVERY_OF_5)), ips(c, webs), 'every endpoint serves zone-a now');
    },
  },
  {
    title: '11. ferry trace: for every flow, the node\'s trace (desired and --live) names what real connections meet (endpoints, masquerade, refusal, drop)',
    async run(c, t, backend) {
      if (!c.trace) return t.log('this driver has no ferry trace: skipped');
      await c.apply([
        service('tr-cluster', ['10.96.1.110']), ...c.endpointSlices('tr-cluster', ['web-1', 'web-2'], [HTTP, DNS]),
        service('tr-np', ['10.96.1.111'], { type: 'NodePort', ports: nodePorts(30110, 30111) }), ...c.endpointSlices('tr-np', ['web-3'], [HTTP, DNS]),
        service('tr-local', ['10.96.1.112'], { type: 'NodePort', externalTrafficPolicy: 'Local', ports: nodePorts(30112, 30113) }),
        ...c.endpointSlices('tr-local', ['web-1', 'web-3'], [HTTP, DNS]),
        service('tr-empty', ['10.96.1.113']),
      ], backend);
      const external = c.externals[0]!;
      // Each flow: who sends, which node's rules it meets (a pod's own node; for an outside client the node it is sent to), where to.
      const flows: Array<{ from: Host; via: string; to: string; port: number; proto: 'tcp' | 'udp' }> = [
        { from: pod(c, 'client-a'), via: 'node-a', to: '10.96.1.110', port: 80, proto: 'tcp' },
        { from: pod(c, 'client-c'), via: 'node-c', to: '10.96.1.110', port: 53, proto: 'udp' },
        { from: external, via: 'node-a', to: node(c, 'node-a').ipv4, port: 30110, proto: 'tcp' },
        { from: external, via: 'node-b', to: node(c, 'node-b').ipv4, port: 30112, proto: 'tcp' },
        { from: external, via: 'node-c', to: node(c, 'node-c').ipv4, port: 30112, proto: 'tcp' },
        // node-b has no tr-local endpoint: outside clients are dropped there (above), its own pods reach every endpoint.
        { from: pod(c, 'client-b'), via: 'node-b', to: node(c, 'node-b').ipv4, port: 30112, proto: 'tcp' },
        { from: pod(c, 'client-b'), via: 'node-b', to: '10.96.1.113', port: 80, proto: 'tcp' },
        { from: pod(c, 'client-b'), via: 'node-b', to: '10.96.1.110', port: 81, proto: 'tcp' },
      ];
      for (const flow of flows) {
        const what = `${flow.from.name} -> ${flow.to}:${flow.port}/${flow.proto} via ${flow.via}`;
        const query = { from: flow.from.ipv4, to: flow.to, port: flow.port, protocol: flow.proto === 'tcp' ? 'TCP' as const : 'UDP' as const };
        const answer = await c.trace(node(c, flow.via), backend, query);
        // --live reads the node's rules or maps back: the same way, the same endpoints and shares.
        const live = await c.trace(node(c, flow.via), backend, { ...query, live: true });
        const way = (trace: typeof answer) => ({ verdict: trace.verdict, masquerade: trace.masquerade, endpoints: trace.endpoints.map((endpoint) => ({ ...endpoint, probability: endpoint.probability.toFixed(6) })) });
        t.deepEqual(way(live), way(answer), `${what}: trace --live answers as the desired rules do`);
        t.true(live.matchesDesired, `${what}: trace --live says the kernel agrees`);
        if (answer.verdict === 'forward') {
          const expected = answer.endpoints.map((endpoint) => endpoint.ip).sort();
          const results = await c.probe(flow.from, { proto: flow.proto, host: flow.to, port: flow.port, count: expected.length === 1 ? 5 : EVERY_OF_2 });
          t.deepEqual(servers(results), expected, `${what}: the endpoints trace names answer, all of them`);
          t.is(results.every((result) => result.peer === flow.from.ipv4), !answer.masquerade, `${what}: masquerade ${answer.masquerade} as trace says`);
        } else {
          const [result] = await c.probe(flow.from, { proto: flow.proto, host: flow.to, port: flow.port, count: 1, timeoutMs: 1500 });
          t.is(result!.error, answer.verdict === 'reject' ? 'ECONNREFUSED' : 'ETIMEDOUT', `${what}: trace says ${answer.verdict}`);
        }
      }
    },
  },
];

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
