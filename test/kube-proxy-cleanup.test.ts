// `ferry cleanup --kube-proxy`: what kube-proxy left goes, what the kubelet, a CNI and ferry own stays.
import test from 'ava';
import { isKubeProxyChain, kubeProxyRemoval } from '../dataplane/kube-proxy-cleanup.js';
import { runChecked } from '../dataplane/runner.js';
import { ferry } from './helpers/cli.js';
import { throwawayNamespace } from './helpers/netns-runner.js';

// What kube-proxy's iptables mode (v1.31) and the kubelet leave on a node, as iptables-save prints it,
// plus a CNI chain that jumps to KUBE-MARK-MASQ.
const KUBE_PROXY_RULES = `*mangle
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*filter
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-SERVICES -d 10.96.0.99/32 -p tcp -m comment --comment "default/empty has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
COMMIT
*nat
:KUBE-EXT-7EJNTS7AENER2WX5 - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-7EJNTS7AENER2WX5 - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -j CNI-HOSTPORT-MASQ
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j KUBE-MARK-MASQ
-A KUBE-EXT-7EJNTS7AENER2WX5 -m comment --comment "masquerade traffic for default/web external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-7EJNTS7AENER2WX5 -j KUBE-SVC-7EJNTS7AENER2WX5
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web" -m tcp --dport 30080 -j KUBE-EXT-7EJNTS7AENER2WX5
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-UKSFD7AGPMPPLUHC -s 10.244.1.9/32 -m comment --comment "default/web" -j KUBE-MARK-MASQ
-A KUBE-SEP-UKSFD7AGPMPPLUHC -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 10.244.1.9:8080
-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j KUBE-SVC-7EJNTS7AENER2WX5
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-7EJNTS7AENER2WX5 -m comment --comment "default/web -> 10.244.1.9:8080" -j KUBE-SEP-UKSFD7AGPMPPLUHC
COMMIT
`;

test('kube-proxy\'s chains are told from the kubelet\'s', (t) => {
  for (const chain of ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ', 'KUBE-SVC-7EJNTS7AENER2WX5', 'KUBE-SEP-UKSFD7AGPMPPLUHC', 'KUBE-EXT-X', 'KUBE-FW-X', 'KUBE-SVL-X']) t.true(isKubeProxyChain('nat', chain), chain);
  for (const chain of ['KUBE-FORWARD', 'KUBE-PROXY-FIREWALL', 'KUBE-EXTERNAL-SERVICES', 'KUBE-SERVICES']) t.true(isKubeProxyChain('filter', chain), chain);
  for (const [table, chain] of [['filter', 'KUBE-FIREWALL'], ['nat', 'KUBE-KUBELET-CANARY'], ['mangle', 'KUBE-KUBELET-CANARY'], ['nat', 'KUBE-MARK-DROP'], ['nat', 'FERRY-SERVICES'], ['filter', 'KUBE-SVC-X']]) {
    t.false(isKubeProxyChain(table!, chain!), `${table} ${chain}`);
  }
});

test('the removal plan unhooks and deletes kube-proxy\'s chains, and keeps one that another chain still jumps to', (t) => {
  const plan = kubeProxyRemoval(KUBE_PROXY_RULES);
  t.regex(plan, /^-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES$/m);
  t.regex(plan, /^-X KUBE-SVC-7EJNTS7AENER2WX5$/m);
  t.regex(plan, /^-X KUBE-PROXY-CANARY$/m);
  t.notRegex(plan, /KUBE-FIREWALL|KUBE-KUBELET-CANARY|CNI-HOSTPORT/, 'the kubelet\'s and the CNI\'s chains are never named');
  t.notRegex(plan, /KUBE-MARK-MASQ/, 'the CNI chain still jumps to KUBE-MARK-MASQ: it stays');
  t.is(kubeProxyRemoval('*nat\n:PREROUTING ACCEPT [0:0]\n:FERRY-SERVICES - [0:0]\nCOMMIT\n'), '', 'nothing of kube-proxy\'s, no plan');
});

test('kernel: cleanup --kube-proxy removes kube-proxy\'s rules from iptables legacy and nft, both families, and its nftables tables, and leaves the kubelet\'s, a CNI\'s and ferry\'s', async (t) => {
  const { name, runner } = await throwawayNamespace(t);
  t.is((await ferry(['apply', '--node', 'node-a', '-f', 'examples/cluster.yaml'], { netns: name })).exitCode, 0);
  const ipv6Rules = KUBE_PROXY_RULES.replace('10.96.0.99/32', 'fd00:96::99/128').replace('--reject-with icmp-port-unreachable', '--reject-with icmp6-port-unreachable')
    .replace('! -s 127.0.0.0/8 -d 127.0.0.0/8', '! -s ::1/128 -d ::1/128').replace('10.96.0.20/32', 'fd00:96::20/128').replace('10.244.1.9/32', 'fd00:244:0:1::9/128').replace('--to-destination 10.244.1.9:8080', '--to-destination [fd00:244:0:1::9]:8080');
  // nfacct may be missing from the kernel; that rule is not what this test is about.
  const load = (rules: string) => rules.replace(/^.*nfacct.*\n/m, '');
  for (const [restore, rules] of [['iptables-nft-restore', KUBE_PROXY_RULES], ['ip6tables-nft-restore', ipv6Rules], ['iptables-legacy-restore', KUBE_PROXY_RULES], ['ip6tables-legacy-restore', ipv6Rules]] as const) {
    await runChecked(runner, `loading kube-proxy's rules with ${restore}`, restore, ['--noflush'], load(rules));
  }
  await runChecked(runner, 'kube-proxy nftables', 'nft', ['-f', '-'], 'table ip kube-proxy {\n\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t}\n}\ntable ip6 kube-proxy {\n}\ntable inet someone-else {\n}\n');

  const result = await ferry(['cleanup', '--kube-proxy'], { netns: name });
  t.is(result.exitCode, 0, result.stderr);
  t.regex(result.stdout, /removed kube-proxy's .*\(iptables-legacy\).*\(ip6tables-legacy\).*\(iptables-nft\).*\(ip6tables-nft\), table ip kube-proxy, table ip6 kube-proxy/);
  for (const save of ['iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save']) {
    const saved = await runChecked(runner, save, save, []);
    t.notRegex(saved, /KUBE-(SERVICES|NODEPORTS|POSTROUTING|SVC-|SEP-|EXT-|FORWARD|PROXY-FIREWALL|PROXY-CANARY|EXTERNAL-SERVICES)/, save);
    t.regex(saved, /^-A KUBE-FIREWALL /m, `${save}: the kubelet's firewall stays`);
    t.regex(saved, /^:KUBE-KUBELET-CANARY/m, `${save}: the kubelet's canary stays`);
    t.regex(saved, /^-A CNI-HOSTPORT-MASQ .* -j KUBE-MARK-MASQ$/m, `${save}: the CNI chain and what it jumps to stay`);
  }
  const tables = await runChecked(runner, 'tables', 'nft', ['list', 'tables']);
  t.notRegex(tables, /kube-proxy/);
  t.regex(tables, /table inet someone-else/);
  t.regex(tables, /table ip ferry/, 'ferry\'s rules stay: the init container runs at every start');
  const again = await ferry(['cleanup', '--kube-proxy'], { netns: name });
  t.regex(again.stdout, /there were none/);
});
