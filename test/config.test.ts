import test from 'ava';
import fc from 'fast-check';
import { parseDuration } from '../controlplane/config/duration.js';
import { ConfigError, defaultConfig, parseKubeProxyConfiguration } from '../controlplane/config/kube-proxy-config.js';

const header = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n';
const parse = (body: string) => parseKubeProxyConfiguration(header + body, 'kube-proxy.yaml');

// The config.conf of a kubeadm cluster's kube-proxy ConfigMap, switched to nftables.
const kubeadm = `${header}bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
clusterCIDR: 10.244.0.0/16,fd00:244::/56
configSyncPeriod: 0s
conntrack:
  maxPerCore: null
  min: null
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: ""
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  scheduler: ""
metricsBindAddress: ""
mode: nftables
nftables:
  masqueradeAll: true
  masqueradeBit: 15
  minSyncPeriod: 2s
  syncPeriod: 1m0s
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
`;

test('no config file means the documented defaults', (t) => {
  t.deepEqual(defaultConfig, {
    mode: undefined, clusterCIDRs: [], detectLocalMode: 'NodeCIDR', nodePortAddresses: { kind: 'primary' },
    iptables: { masqueradeBit: 14, masqueradeAll: false }, nftables: { masqueradeBit: 14, masqueradeAll: false },
    syncPeriodMs: 30_000, minSyncPeriodMs: 1_000, metricsBindAddress: '127.0.0.1:10249', healthzBindAddress: '0.0.0.0:10256',
    hostnameOverride: undefined, kubeconfig: undefined, verbosity: 0,
  });
  t.deepEqual(parse('').config, defaultConfig);
});

test('a kubeadm kube-proxy config is honoured, with the selected backend\'s periods and null as unset', (t) => {
  const { config, warnings } = parseKubeProxyConfiguration(kubeadm, 'config.conf');
  t.deepEqual(config, {
    mode: 'nftables', clusterCIDRs: ['10.244.0.0/16', 'fd00:244::/56'], detectLocalMode: 'ClusterCIDR', nodePortAddresses: { kind: 'primary' },
    iptables: { masqueradeBit: 14, masqueradeAll: false }, nftables: { masqueradeBit: 15, masqueradeAll: true },
    syncPeriodMs: 60_000, minSyncPeriodMs: 2_000, metricsBindAddress: '127.0.0.1:10249', healthzBindAddress: '0.0.0.0:10256',
    hostnameOverride: undefined, kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf', verbosity: 0,
  });
  // Every ignored field holds kube-proxy's default or a zero value, as kubeadm writes them: no warning.
  t.deepEqual(warnings, []);
});

test('an ignored field set to something else than kube-proxy\'s default is a warning naming it and the value', (t) => {
  t.deepEqual(parse('conntrack:\n  maxPerCore: 65536\n  min: 131072\nipvs:\n  scheduler: rr\n  syncPeriod: 30s\niptables:\n  localhostNodePorts: false\n').warnings, [
    'config: conntrack.maxPerCore is not used by ferry (ignored), got 65536',
    'config: ipvs.scheduler is not used by ferry (ignored), got "rr"',
    'config: iptables.localhostNodePorts is not used by ferry (ignored), got false',
  ]);
  t.deepEqual(parse('logging:\n  flushFrequency: 5s\n  verbosity: 4\nconfigSyncPeriod: 15m0s\nfeatureGates: {}\n').warnings, []);
  t.deepEqual(parse('featureGates:\n  MultiCIDRServiceAllocator: true\n').warnings, ['config: featureGates.MultiCIDRServiceAllocator is not used by ferry (ignored), got true']);
});

test('0s periods mean kube-proxy\'s defaults, as kubeadm writes them', (t) => {
  const { config } = parse('iptables:\n  syncPeriod: 0s\n  minSyncPeriod: 0s\nnftables:\n  syncPeriod: 0s\n');
  t.is(config.syncPeriodMs, 30_000);
  t.is(config.minSyncPeriodMs, 1_000);
  t.is(parse('mode: iptables\niptables:\n  syncPeriod: 0s\nnftables:\n  syncPeriod: 45s\n').config.syncPeriodMs, 45_000, 'the other section fills in for a zero');
  t.is(parse('syncPeriod: 0s\n').config.syncPeriodMs, 30_000);
});

test('hostnameOverride, clientConnection.kubeconfig and logging.verbosity are honoured', (t) => {
  const { config, warnings } = parse('hostnameOverride: " Node-A "\nclientConnection:\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n  qps: 5\nlogging:\n  verbosity: 4\n');
  t.is(config.hostnameOverride, 'node-a');
  t.is(config.kubeconfig, '/var/lib/kube-proxy/kubeconfig.conf');
  t.is(config.verbosity, 4);
  t.deepEqual(warnings, []);
  t.is(parse('hostnameOverride: ""\n').config.hostnameOverride, undefined);
});

test('unknown fields are ignored with a warning that calls them unknown', (t) => {
  t.deepEqual(parse('frobnicate: 3\n').warnings, ['config: frobnicate is unknown (ignored)']);
});

test('nodePortAddresses takes primary, all or CIDRs', (t) => {
  t.deepEqual(parse('nodePortAddresses: [primary]\n').config.nodePortAddresses, { kind: 'primary' });
  t.deepEqual(parse('nodePortAddresses: [all]\n').config.nodePortAddresses, { kind: 'all' });
  t.deepEqual(parse('nodePortAddresses: [192.168.56.0/24, "fd00:56::/64"]\n').config.nodePortAddresses, { kind: 'cidrs', cidrs: ['192.168.56.0/24', 'fd00:56::/64'] });
});

test('detectLocalMode NodeCIDR is honoured even with a clusterCIDR', (t) => {
  t.is(parse('clusterCIDR: 10.244.0.0/16\ndetectLocalMode: NodeCIDR\n').config.detectLocalMode, 'NodeCIDR');
});

test('bind addresses accept host:port, [ipv6]:port and a bare IP', (t) => {
  t.is(parse('metricsBindAddress: 0.0.0.0:9999\n').config.metricsBindAddress, '0.0.0.0:9999');
  t.is(parse('healthzBindAddress: "[::]:10256"\n').config.healthzBindAddress, '[::]:10256');
  t.is(parse('metricsBindAddress: 10.0.0.1\n').config.metricsBindAddress, '10.0.0.1:10249');
});

const invalid: [string, string, RegExp][] = [
  ['a masquerade bit of 32', 'iptables:\n  masqueradeBit: 32\n', /iptables\.masqueradeBit: .*got 32/],
  ['a negative masquerade bit', 'nftables:\n  masqueradeBit: -1\n', /nftables\.masqueradeBit/],
  ['a fractional masquerade bit', 'iptables:\n  masqueradeBit: 1.5\n', /iptables\.masqueradeBit/],
  ['a masquerade bit given as a string', 'iptables:\n  masqueradeBit: "14"\n', /iptables\.masqueradeBit: .*got "14"/],
  ['masqueradeAll given as a string', 'iptables:\n  masqueradeAll: "yes"\n', /iptables\.masqueradeAll/],
  ['a bad cluster CIDR', 'clusterCIDR: 10.244.0.0/33\n', /clusterCIDR: .*10\.244\.0\.0\/33/],
  ['a cluster CIDR with host bits', 'clusterCIDR: 10.244.1.5/16\n', /clusterCIDR/],
  ['two IPv4 cluster CIDRs', 'clusterCIDR: 10.244.0.0/16,10.245.0.0/16\n', /clusterCIDR: must hold at most one CIDR per family/],
  ['a bad duration', 'syncPeriod: 5x\n', /syncPeriod: must be a duration/],
  ['a negative duration', 'syncPeriod: -1s\n', /syncPeriod/],
  ['minSyncPeriod longer than syncPeriod', 'syncPeriod: 1s\nminSyncPeriod: 2s\n', /minSyncPeriod: must not be longer than syncPeriod/],
  ['a verbosity that is not a number', 'logging:\n  verbosity: high\n', /logging\.verbosity/],
  ['mode ipvs', 'mode: ipvs\n', /mode: is not supported by ferry/],
  ['an unknown mode', 'mode: userspace\n', /mode: must be one of/],
  ['detectLocalMode BridgeInterface', 'detectLocalMode: BridgeInterface\n', /detectLocalMode: is not supported by ferry/],
  ['primary mixed with CIDRs', 'nodePortAddresses: [primary, 10.0.0.0/8]\n', /nodePortAddresses: "primary" must be the only entry/],
  ['a bad node-port CIDR', 'nodePortAddresses: [10.0.0.0]\n', /nodePortAddresses\[0\]/],
  ['a bind address with a bad port', 'metricsBindAddress: 127.0.0.1:99999\n', /metricsBindAddress: must have a port/],
  ['a bind address with a host name', 'healthzBindAddress: localhost:10256\n', /healthzBindAddress: must be an IP/],
];

for (const [what, body, message] of invalid) {
  test(`${what} is a config error naming the field`, (t) => {
    const error = t.throws(() => parse(body), { instanceOf: ConfigError });
    t.regex(error.message, /^kube-proxy\.yaml: /);
    t.regex(error.message, message);
  });
}

test('the wrong kind, the wrong apiVersion and broken YAML are config errors', (t) => {
  t.throws(() => parseKubeProxyConfiguration('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n'), { instanceOf: ConfigError, message: /kind/ });
  t.throws(() => parseKubeProxyConfiguration('apiVersion: v1\nkind: KubeProxyConfiguration\n'), { instanceOf: ConfigError, message: /apiVersion/ });
  t.throws(() => parseKubeProxyConfiguration('mode: [nftables\n', 'x.yaml'), { instanceOf: ConfigError, message: /^x\.yaml: / });
});

test('Go durations parse to milliseconds', (t) => {
  const table: [string, number | undefined][] = [
    ['0', 0], ['0s', 0], ['300ms', 300], ['1.5s', 1500], ['2m', 120_000], ['1m0s', 60_000], ['1h2m3.5s', 3_723_500],
    ['1500us', 1.5], ['', undefined], ['5x', undefined], ['-1s', undefined], ['1', undefined], ['s', undefined], ['1s ', undefined],
  ];
  for (const [text, milliseconds] of table) t.is(parseDuration(text), milliseconds, text);
});

test('durations written as Go prints them parse back to the same value', (t) => {
  fc.assert(fc.property(fc.nat(99), fc.nat(59), fc.nat(59), fc.nat(999), (h, m, s, ms) => {
    const text = `${h}h${m}m${s}s${ms}ms`;
    return parseDuration(text) === ((h * 60 + m) * 60 + s) * 1000 + ms;
  }));
  t.pass();
});
