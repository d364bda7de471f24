import test from 'ava';
import fc from 'fast-check';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { buildClusterState } from '../controlplane/model/cluster-state.js';
import { render } from '../dataplane/render.js';
import * as iptables from '../dataplane/iptables/shell.js';
import * as nftables from '../dataplane/nftables/shell.js';
import { execaRunner } from '../dataplane/runner.js';
import { BACKENDS } from '../dataplane/backends.js';
import { nodeObject, testConfig } from './helpers/objects.js';
import { BACKEND_NAMES } from '../dataplane/backend-names.js';

// Names are either valid DNS labels (so they reach the rules) or anything at all (so validation is hit).
const dnsLabel = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/);
const hostile = fc.oneof(fc.string({ maxLength: 80 }), fc.constantFrom('a" ; flush ruleset ; "', 'x\nCOMMIT\n*filter', '} chain x {', '$(reboot)', 'ns/name:80', '--comment "'));
/** Mostly valid, sometimes anything: each object then has a fair chance of reaching the rules. */
const mostly = <T,>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<unknown>) => fc.oneof({ weight: 12, arbitrary: valid }, { weight: 1, arbitrary: invalid });
const name = mostly(dnsLabel, hostile);
const ipOrJunk = mostly(fc.ipV4(), fc.oneof(fc.ipV6(), hostile));

const service = fc.record({
  namespace: name, name, portName: name, note: hostile, sourceRanges: mostly(fc.constant('10.0.0.0/8, 192.168.0.0/16'), hostile),
  clusterIP: ipOrJunk, externalIP: ipOrJunk,
  port: mostly(fc.integer({ min: 1, max: 65535 }), fc.oneof(fc.integer(), fc.string())), nodePort: fc.integer({ min: 30000, max: 32767 }),
  protocol: mostly(fc.constantFrom('TCP', 'UDP', 'SCTP'), fc.constantFrom('tcp', 'ICMP', '')),
  type: mostly(fc.constantFrom('ClusterIP', 'NodePort', 'LoadBalancer'), fc.constantFrom('Weird', 'ExternalName')),
  endpoints: fc.array(fc.record({ ip: ipOrJunk, ready: fc.boolean(), node: fc.constantFrom('node-a', 'node-b', 'x"y') }), { maxLength: 4 }),
  sliceLabel: name,
});

type GeneratedService = typeof service extends fc.Arbitrary<infer T> ? T : never;

function objects(services: GeneratedService[]) {
  return services.flatMap((s, index) => [
    {
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: s.name, namespace: s.namespace, annotations: { 'ferry.example/note': s.note, 'service.beta.kubernetes.io/load-balancer-source-ranges': s.sourceRanges } },
      spec: { type: s.type, clusterIP: s.clusterIP, externalIPs: [s.externalIP], ports: [{ name: s.portName, port: s.port, protocol: s.protocol, nodePort: s.nodePort }] },
      status: { loadBalancer: { ingress: [{ ip: s.externalIP }] } },
    },
    {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `slice-${index}`, namespace: s.namespace, labels: { 'kubernetes.io/service-name': s.sliceLabel } },
      addressType: 'IPv4',
      endpoints: s.endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready }, nodeName: e.node })),
      ports: [{ name: s.portName, port: 8080, protocol: s.protocol }],
    },
  ]);
}

const config = testConfig;

for (const backend of BACKEND_NAMES) {
  test(`kernel: any names and values give a ${backend} rule set the kernel accepts, or a named error`, async (t) => {
    let rendered = 0;
    await fc.assert(fc.asyncProperty(fc.array(service, { minLength: 1, maxLength: 6 }), async (services) => {
      const { state, errors } = buildClusterState([nodeObject('node-a'), ...objects(services)]);
      for (const error of errors) {
        t.truthy(error.object, 'an error names the object');
        t.true(error.message.startsWith(`${error.field}: `), 'an error names the field');
      }
      rendered += state.services.length;
      const rules = render(computeNodeRules(state, 'node-a', config), backend);
      BACKENDS[backend].check(rules);
      for (const part of rules.texts) {
        // ebpf: its companion table is an nft script (the other text lists the maps for people).
        if (backend === 'nftables' || (backend === 'ebpf' && part.text.startsWith('#!/usr/sbin/nft'))) await nftables.listAsKernelWould(execaRunner, part.text);
        else if (backend === 'iptables') await iptables.listAsKernelWould(execaRunner, part.family as iptables.Family, part.text);
      }
    }), { numRuns: 40 });
    t.true(rendered >= 10, `only ${rendered} generated Services were valid: the property would prove little`);
  });
}
