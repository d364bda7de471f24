import test from 'ava';
import { computeNodeRules } from '../controlplane/compute/compute.js';
import { endpointKey } from '../rules/names.js';
import type { EndpointTarget } from '../rules/node-rules.js';
import { nftIdentifier, ruleComment } from '../dataplane/escape.js';
import { cumulativeProbabilities, iptablesOf } from '../dataplane/iptables/render.js';
import { checkIptables } from '../dataplane/iptables/structure.js';
import { render } from '../dataplane/render.js';
import { StructureError } from '../dataplane/structure-error.js';
import { nftOf } from '../dataplane/nftables/render.js';
import { checkNftables } from '../dataplane/nftables/structure.js';
import { clusterState, serviceObject, sliceObject, testConfig } from './helpers/objects.js';

const config = testConfig;

const target = (weight: number): EndpointTarget => ({ ip: '10.0.0.1', port: 80, weight, onNode: true });

test('equal weights give kube-proxy\'s uniform probabilities 1/n, 1/(n-1), ..., and no test on the last, as the kernel keeps them', (t) => {
  // 1/3 is kept as round(2^31 / 3) / 2^31, which iptables-save prints as 0.33333333349.
  t.deepEqual(cumulativeProbabilities([target(1), target(1), target(1)]).map((choice) => choice.probability),
    ['0.33333333349', '0.50000000000', undefined]);
});

test('weights 1:3 give probabilities 0.25 then the rest', (t) => {
  t.deepEqual(cumulativeProbabilities([target(1), target(3)]).map((choice) => choice.probability), ['0.25000000000', undefined]);
});

test('cumulative probabilities give every endpoint its share', (t) => {
  const weights = [5, 1, 3, 7];
  const choices = cumulativeProbabilities(weights.map(target));
  let left = 1;
  const shares = choices.map(({ probability }) => {
    const share = left * (probability === undefined ? 1 : Number(probability));
    left -= share;
    return share;
  });
  shares.forEach((share, index) => t.true(Math.abs(share - weights[index]! / 16) < 1e-9));
});

function renderWeighted(backend: 'nftables' | 'iptables') {
  const state = clusterState(serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }, { ip: '10.244.2.9' }, { ip: '10.244.3.9' }]));
  const weights = new Map([[endpointKey('tcp', '10.244.1.9', 8080), 1], [endpointKey('tcp', '10.244.2.9', 8080), 2], [endpointKey('tcp', '10.244.3.9', 8080), 5]]);
  return render(computeNodeRules(state, 'node-a', config, weights), backend).texts[0]!.text;
}

test('nftables renders weights 1:2:5 as cumulative numgen rules that give each endpoint its share', (t) => {
  const lines = renderWeighted('nftables').split('\n').filter((line) => / dnat to 10\.244\.\d\.9:8080$/.test(line));
  t.deepEqual(lines.map((line) => line.trim()), [
    'meta l4proto tcp numgen random mod 8 < 1 dnat to 10.244.1.9:8080',
    'meta l4proto tcp numgen random mod 7 < 2 dnat to 10.244.2.9:8080',
    'meta l4proto tcp dnat to 10.244.3.9:8080',
  ]);
  let left = 1;
  const shares = lines.map((line) => {
    const [, modulus, below] = /numgen random mod (\d+) < (\d+)/.exec(line) ?? [];
    const share = left * (modulus ? Number(below) / Number(modulus) : 1);
    left -= share;
    return share;
  });
  t.deepEqual(shares.map((share) => Math.round(share * 8)), [1, 2, 5]);
});

test('nftables Service chains use no set or map of their own, so loading grows linearly with Services', (t) => {
  const many = clusterState(
    serviceObject({ name: 'web' }), sliceObject('web', [{ ip: '10.244.1.9' }, { ip: '10.244.2.9' }]),
    serviceObject({
      name: 'api', clusterIPs: ['10.96.0.30'], type: 'LoadBalancer', externalTrafficPolicy: 'Local',
      ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }], loadBalancerSourceRanges: ['192.0.2.0/24', '198.51.100.0/24'],
    }, { loadBalancer: { ingress: [{ ip: '203.0.113.7' }] } }),
    sliceObject('api', [{ ip: '10.244.1.8', node: 'node-a' }, { ip: '10.244.2.8', node: 'node-b' }]),
  );
  const text = render(computeNodeRules(many, 'node-a', config), 'nftables').texts[0]!.text;
  const bodies = [...text.matchAll(/\n\tchain (?:svc|svl|ext|fw)-\S+ \{\n([\s\S]*?)\n\t\}/g)].map((match) => match[1]!);
  t.is(bodies.length, 5, text);
  for (const body of bodies) t.false(body.includes('{'), body);
});

test('nftables affinity keeps a chain per endpoint that records the client', (t) => {
  const state = clusterState(serviceObject({ sessionAffinity: 'ClientIP' }), sliceObject('web', [{ ip: '10.244.1.9' }, { ip: '10.244.2.9' }]));
  const text = render(computeNodeRules(state, 'node-a', config), 'nftables').texts[0]!.text;
  t.regex(text, /\t\tnumgen random mod 2 < 1 goto (sep-\w+)\n\t\tgoto sep-\w+\n/);
  t.regex(text, /chain sep-\w+ \{\n\t\tupdate @affinity-\w+ \{ ip saddr \}\n\t\tmeta l4proto tcp dnat to 10\.244\.1\.9:8080/);
});

test('nftables hairpin: endpoints are pairs in hairpin-endpoints, masqueraded after DNAT', (t) => {
  const text = renderWeighted('nftables');
  t.regex(text, /set hairpin-endpoints \{\n\t\ttype ipv4_addr \. ipv4_addr\n\t\telements = \{\n\t\t\t10\.244\.1\.9 \. 10\.244\.1\.9,\n\t\t\t10\.244\.2\.9 \. 10\.244\.2\.9,\n\t\t\t10\.244\.3\.9 \. 10\.244\.3\.9,\n\t\t\}/);
  t.regex(text, /chain masquerading \{\n\t\tct status dnat ip saddr \. ip daddr @hairpin-endpoints jump mark-for-masquerade/);
});

test('nftables hairpin pairs are the endpoints on this node and those of no named node: a pod elsewhere is translated on its own node', (t) => {
  const state = clusterState(serviceObject(), sliceObject('web', [{ ip: '10.244.1.9', node: 'node-a' }, { ip: '10.244.2.9', node: 'node-b' }, { ip: '10.244.3.9' }]));
  const text = render(computeNodeRules(state, 'node-a', config), 'nftables').texts[0]!.text;
  const [, elements] = /set hairpin-endpoints \{\n[^\n]*\n\t\telements = \{([^}]*)\}/.exec(text)!;
  t.deepEqual(elements!.split(',').map((element) => element.trim()).filter(Boolean), ['10.244.1.9 . 10.244.1.9', '10.244.3.9 . 10.244.3.9']);
  t.regex(text, /dnat to 10\.244\.2\.9:8080/, 'the endpoint elsewhere is still served');
});

test('iptables renders weights as cumulative statistic rules', (t) => {
  const text = renderWeighted('iptables');
  const lines = text.split('\n').filter((line) => line.startsWith('-A FERRY-SVC-'));
  t.deepEqual(lines.map((line) => / --probability (\S+)/.exec(line)?.[1]), [undefined, '0.12500000000', '0.28571428591', undefined]);
});

test('a single endpoint is a plain DNAT, without numgen or statistic', (t) => {
  const state = clusterState(serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }]));
  const rules = computeNodeRules(state, 'node-a', config);
  t.regex(render(rules, 'nftables').texts[0]!.text, /chain svc-\w+-default\/web\/http\/tcp \{\n.*\n\t\tmeta l4proto tcp dnat to 10\.244\.1\.9:8080\n\t\}/);
  t.notRegex(render(rules, 'nftables').texts[0]!.text, /numgen/);
  t.notRegex(render(rules, 'iptables').texts[0]!.text, /statistic/);
});

test('iptables renders one restore input per family and nftables one script for both', (t) => {
  const rules = computeNodeRules(clusterState(), 'node-a', config);
  t.deepEqual(render(rules, 'iptables').texts.map((part) => part.family), ['IPv4', 'IPv6']);
  t.deepEqual(render(rules, 'nftables').texts.map((part) => part.family), ['both']);
});

test('rendering is pure: the same rules give byte-identical text', (t) => {
  t.is(renderWeighted('nftables'), renderWeighted('nftables'));
  t.is(renderWeighted('iptables'), renderWeighted('iptables'));
});

test('comments cannot end their quotes or the line', (t) => {
  const hostile = 'a"b\\c\nd\re;f{g}h#i$j`k\'l@m';
  const safe = ruleComment(hostile);
  t.notRegex(safe, /["\\\n\r;{}#$`'@]/);
  t.true(ruleComment('x'.repeat(500)).length <= 120);
  t.is(ruleComment('shop/web:http/tcp -> [fd00::1]:80'), 'shop/web:http/tcp -> [fd00::1]:80');
});

test('nft identifiers keep only characters nft accepts unquoted', (t) => {
  t.is(nftIdentifier('ns/name:port/tcp'), 'ns/name_port/tcp');
  t.regex(nftIdentifier('a b"c{d}e;f'), /^[A-Za-z0-9/_.-]+$/);
});

test('the nftables structure check finds a dangling goto and an undefined map, in a port and in the head', (t) => {
  const rendered = render(computeNodeRules(clusterState(serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }])), 'node-a', testConfig), 'nftables');
  t.notThrows(() => checkNftables(rendered));
  const nft = nftOf(rendered);
  const [table, ...others] = nft.tables;
  const [port, ...ports] = table!.ports;
  const poisonedPort = { ...port!, references: { chains: [...port!.references.chains, 'svc-missing'], sets: [...port!.references.sets, 'nope'] } };
  const headChains = table!.headChains.filter((chain) => chain.name !== 'masquerading');
  const poisoned = { ...rendered, nft: { ...nft, tables: [{ ...table!, headChains, ports: [poisonedPort, ...ports] }, ...others] } };
  const error = t.throws(() => checkNftables(poisoned), { instanceOf: StructureError });
  t.regex(error.message, /undefined chain svc-missing/);
  t.regex(error.message, /@nope/);
  t.regex(error.message, /undefined chain masquerading/, 'nat-postrouting jumps to it');
});

test('the iptables structure check finds an undeclared chain and an over-long name, in a port and in the head', (t) => {
  const rendered = render(computeNodeRules(clusterState(serviceObject(), sliceObject('web', [{ ip: '10.244.1.9' }])), 'node-a', testConfig), 'iptables');
  t.notThrows(() => checkIptables(rendered));
  const iptables = iptablesOf(rendered);
  const [family, ...others] = iptables.families;
  const [port, ...ports] = family!.ports;
  const tooLong = 'FERRY-THIS-NAME-IS-FAR-TOO-LONG-FOR-IPTABLES';
  const poisonedPort = {
    ...port!,
    own: { ...port!.own, nat: { ...port!.own.nat, chains: [...port!.own.nat.chains, tooLong] } },
    references: { ...port!.references, nat: [...port!.references.nat, 'FERRY-MISSING'] },
  };
  const declared = { ...family!.head.declared, nat: family!.head.declared.nat.filter((chain) => chain !== 'FERRY-SERVICES') };
  const head = { ...family!.head, declared };
  const poisoned = { ...rendered, iptables: { ...iptables, families: [{ ...family!, head, ports: [poisonedPort, ...ports] }, ...others] } };
  const error = t.throws(() => checkIptables(poisoned), { instanceOf: StructureError });
  t.regex(error.message, /longer than 28/);
  t.regex(error.message, /jumps to FERRY-MISSING, which is not declared/);
  t.regex(error.message, /-A PREROUTING jumps to FERRY-SERVICES, which is not declared/, 'a hook jumps to it');
  t.regex(error.message, /ports write into FERRY-SERVICES, which is not declared/);
});
