// Reads a kube-proxy KubeProxyConfiguration document into ferry's config, warning about what ferry ignores.
import { parseDocument } from 'yaml';
import { BACKEND_NAMES, CONFIG_SECTION, DEFAULT_BACKEND, type BackendName } from '../../dataplane/backend-names.js';
import type { ComputeConfig } from '../compute/compute.js';
import { Field, FieldError, isRecord } from '../model/fields.js';
import { familyOf } from '../model/ip.js';
import { parseDuration } from './duration.js';

/** The sections of kube-proxy's configuration that hold a backend's masquerade settings. */
type KubeProxySection = 'iptables' | 'nftables';

/** ferry's configuration; every field has a default, so no file means defaults. */
export interface FerryConfig {
  /** From `mode`; undefined when the file does not say (the CLI then uses DEFAULT_BACKEND). */
  mode: BackendName | undefined;
  /** Pod CIDRs of the cluster, at most one per family. */
  clusterCIDRs: string[];
  detectLocalMode: 'ClusterCIDR' | 'NodeCIDR';
  nodePortAddresses: { kind: 'primary' } | { kind: 'all' } | { kind: 'cidrs'; cidrs: string[] };
  iptables: { masqueradeBit: number; masqueradeAll: boolean };
  nftables: { masqueradeBit: number; masqueradeAll: boolean };
  syncPeriodMs: number;
  minSyncPeriodMs: number;
  metricsBindAddress: string;
  healthzBindAddress: string;
  /** `hostnameOverride`: the Node name to use instead of the host name. */
  hostnameOverride: string | undefined;
  /** `clientConnection.kubeconfig`: how to reach the API server (kubeadm points it at the control plane). */
  kubeconfig: string | undefined;
  /** `logging.verbosity`, klog's -v. */
  verbosity: number;
}

/** The config file is unusable; the message names the field path and echoes the value. */
export class ConfigError extends Error {}

/** ferry's defaults, which are kube-proxy's except that NodeCIDR local detection needs no clusterCIDR. */
export const defaultConfig: FerryConfig = {
  mode: undefined,
  clusterCIDRs: [],
  detectLocalMode: 'NodeCIDR',
  nodePortAddresses: { kind: 'primary' },
  iptables: { masqueradeBit: 14, masqueradeAll: false },
  nftables: { masqueradeBit: 14, masqueradeAll: false },
  syncPeriodMs: 30_000,
  minSyncPeriodMs: 1_000,
  metricsBindAddress: '127.0.0.1:10249',
  healthzBindAddress: '0.0.0.0:10256',
  hostnameOverride: undefined,
  kubeconfig: undefined,
  verbosity: 0,
};

const API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1';
const BACKEND_FIELDS = ['masqueradeBit', 'masqueradeAll', 'syncPeriod', 'minSyncPeriod'];
const HONOURED = new Set(['apiVersion', 'kind', 'mode', 'clusterCIDR', 'detectLocalMode', 'nodePortAddresses', 'syncPeriod',
  'minSyncPeriod', 'metricsBindAddress', 'healthzBindAddress', 'hostnameOverride', 'iptables', 'nftables']);
// Honoured leaves inside sections that ferry otherwise ignores.
const HONOURED_LEAVES = new Set(['clientConnection.kubeconfig', 'logging.verbosity']);
// Fields kube-proxy knows that ferry does not use: a warning only when set to something else than
// kube-proxy's default, so a stock kubeadm config.conf loads quietly.
const KUBE_PROXY_FIELDS = new Set(['bindAddress', 'bindAddressHardFail', 'clientConnection', 'configSyncPeriod', 'conntrack',
  'detectLocal', 'enableProfiling', 'featureGates', 'ipvs', 'linux', 'logging', 'oomScoreAdj', 'portRange',
  'showHiddenMetricsForVersion', 'udpIdleTimeout', 'winkernel', 'windowsRunAsService']);
// kube-proxy's defaults (pkg/proxy/apis/config/v1alpha1/defaults.go) for fields ferry ignores; zero
// values ("", 0, 0s, false, null, {}) are unset and take these too.
const KUBE_PROXY_DEFAULTS: Record<string, unknown> = {
  bindAddress: '0.0.0.0',
  'clientConnection.contentType': 'application/vnd.kubernetes.protobuf',
  'clientConnection.qps': 5,
  'clientConnection.burst': 10,
  configSyncPeriod: 900_000,
  'conntrack.maxPerCore': 32_768,
  'conntrack.min': 131_072,
  'conntrack.tcpEstablishedTimeout': 86_400_000,
  'conntrack.tcpCloseWaitTimeout': 3_600_000,
  'conntrack.udpTimeout': 0,
  'conntrack.udpStreamTimeout': 0,
  'ipvs.syncPeriod': 30_000,
  'ipvs.minSyncPeriod': 0,
  'iptables.localhostNodePorts': true,
  'logging.format': 'text',
  'logging.flushFrequency': 5_000,
  oomScoreAdj: -999,
};
// Durations among them: Go duration text, or (logging.flushFrequency) nanoseconds as a number.
const DURATION_FIELDS = new Set(['configSyncPeriod', 'conntrack.tcpEstablishedTimeout', 'conntrack.tcpCloseWaitTimeout',
  'conntrack.udpTimeout', 'conntrack.udpStreamTimeout', 'ipvs.syncPeriod', 'ipvs.minSyncPeriod', 'ipvs.tcpTimeout',
  'ipvs.tcpFinTimeout', 'ipvs.udpTimeout', 'logging.flushFrequency']);

/** Parses a KubeProxyConfiguration; throws a ConfigError for anything invalid. */
export function parseKubeProxyConfiguration(text: string, source = 'config'): { config: FerryConfig; warnings: string[] } {
  const document = parseDocument(text);
  if (document.errors.length > 0) throw new ConfigError(`${source}: ${document.errors[0]!.message}`);
  const value: unknown = document.toJS() ?? {};
  try {
    return readConfig(new Field(value, ''));
  } catch (error) {
    if (error instanceof FieldError) throw new ConfigError(`${source}: ${error.message}`);
    throw error;
  }
}

function readConfig(root: Field): { config: FerryConfig; warnings: string[] } {
  if (!isRecord(root.value)) root.fail('must be a KubeProxyConfiguration object');
  root.get('kind').oneOf(['KubeProxyConfiguration']);
  root.get('apiVersion').oneOf([API_VERSION]);
  const warnings = ignoredFields(root.value);

  const modeField = root.get('mode');
  if (modeField.value === 'ipvs' || modeField.value === 'kernelspace') modeField.fail('is not supported by ferry (use nftables, iptables or ebpf)');
  const mode = modeField.oneOf(['', ...BACKEND_NAMES] as const, '');
  const clusterCIDRs = readClusterCIDRs(root.get('clusterCIDR'));
  const detectLocalField = root.get('detectLocalMode');
  const detectLocalMode = detectLocalField.absent || detectLocalField.value === ''
    ? (clusterCIDRs.length > 0 ? 'ClusterCIDR' : 'NodeCIDR')
    : readDetectLocalMode(detectLocalField);
  const section = (name: KubeProxySection) => ({
    masqueradeBit: root.get(name).get('masqueradeBit').integer(0, 31, 14),
    masqueradeAll: root.get(name).get('masqueradeAll').boolean(false),
  });
  const selected = CONFIG_SECTION[mode === '' ? DEFAULT_BACKEND : mode];
  const other: KubeProxySection = selected === 'nftables' ? 'iptables' : 'nftables';
  // v1alpha1 keeps the periods per backend; newer versions moved them to the top level. 0s means
  // kube-proxy's default, which is how kubeadm writes the periods it does not set.
  const period = (name: string, fallback: number) => {
    for (const field of [root.get(name), root.get(selected).get(name), root.get(other).get(name)]) {
      const milliseconds = field.absent ? 0 : readDuration(field);
      if (milliseconds > 0) return milliseconds;
    }
    return fallback;
  };
  const syncPeriodMs = period('syncPeriod', defaultConfig.syncPeriodMs);
  const minSyncPeriodMs = period('minSyncPeriod', defaultConfig.minSyncPeriodMs);
  if (minSyncPeriodMs > syncPeriodMs) new Field(minSyncPeriodMs, 'minSyncPeriod').fail(`must not be longer than syncPeriod (${syncPeriodMs} ms; milliseconds shown)`);

  return {
    config: {
      mode: mode === '' ? undefined : mode,
      clusterCIDRs,
      detectLocalMode,
      nodePortAddresses: readNodePortAddresses(root.get('nodePortAddresses')),
      iptables: section('iptables'),
      nftables: section('nftables'),
      syncPeriodMs,
      minSyncPeriodMs,
      metricsBindAddress: readBindAddress(root.get('metricsBindAddress'), defaultConfig.metricsBindAddress),
      healthzBindAddress: readBindAddress(root.get('healthzBindAddress'), defaultConfig.healthzBindAddress),
      // kube-proxy trims and lower-cases the override, as Node names are.
      hostnameOverride: root.get('hostnameOverride').string('').trim().toLowerCase() || undefined,
      kubeconfig: root.get('clientConnection').get('kubeconfig').string('') || undefined,
      verbosity: root.get('logging').get('verbosity').integer(0, 100, 0),
    },
    warnings,
  };
}

function ignoredFields(config: Record<string, unknown>): string[] {
  const warnings: string[] = [];
  const ignored = (path: string, value: unknown) => {
    if (!HONOURED_LEAVES.has(path) && !isKubeProxyDefault(path, value)) warnings.push(`config: ${path} is not used by ferry (ignored), got ${JSON.stringify(value)}`);
  };
  for (const [key, value] of Object.entries(config)) {
    if (KUBE_PROXY_FIELDS.has(key)) for (const [path, leaf] of leaves(value, key)) ignored(path, leaf);
    else if (!HONOURED.has(key)) warnings.push(`config: ${key} is unknown (ignored)`);
    else if ((key === 'iptables' || key === 'nftables') && isRecord(value)) {
      for (const [inner, leaf] of Object.entries(value)) {
        if (!BACKEND_FIELDS.includes(inner)) ignored(`${key}.${inner}`, leaf);
      }
    }
  }
  return warnings;
}

/** Whether an ignored field holds what kube-proxy would use anyway: unset, a zero value, or its default. */
function isKubeProxyDefault(path: string, value: unknown): boolean {
  const known = KUBE_PROXY_DEFAULTS[path];
  if (DURATION_FIELDS.has(path)) {
    const milliseconds = typeof value === 'number' ? value / 1e6 : typeof value === 'string' ? parseDuration(value) : undefined;
    return value === null || value === undefined || milliseconds === 0 || milliseconds === known;
  }
  // A *bool that defaults to true is set when false.
  const zero = value === null || value === undefined || value === '' || value === 0 || value === '0' || (value === false && known !== true)
    || (isRecord(value) && Object.keys(value).length === 0) || (Array.isArray(value) && value.length === 0);
  return zero || value === known;
}

/** Each leaf under a value with its dotted path, so a warning names the exact field. */
function leaves(value: unknown, path: string): [string, unknown][] {
  if (!isRecord(value) || Object.keys(value).length === 0) return [[path, value]];
  return Object.entries(value).flatMap(([key, inner]) => leaves(inner, `${path}.${key}`));
}

function readClusterCIDRs(field: Field): string[] {
  const text = field.string('');
  const cidrs = text.split(',').map((part) => part.trim()).filter(Boolean).map((part) => new Field(part, field.path).cidr());
  if (new Set(cidrs.map(familyOf)).size !== cidrs.length) field.fail('must hold at most one CIDR per family');
  return cidrs;
}

function readDetectLocalMode(field: Field): 'ClusterCIDR' | 'NodeCIDR' {
  const mode = field.string();
  if (mode === 'ClusterCIDR' || mode === 'NodeCIDR') return mode;
  if (mode === 'BridgeInterface' || mode === 'InterfaceNamePrefix') field.fail('is not supported by ferry (use ClusterCIDR or NodeCIDR)');
  return field.fail('must be one of ClusterCIDR, NodeCIDR');
}

function readNodePortAddresses(field: Field): FerryConfig['nodePortAddresses'] {
  const entries = field.list();
  const keyword = entries.find((entry) => entry.value === 'primary' || entry.value === 'all');
  if (keyword && entries.length > 1) field.fail(`"${keyword.value as string}" must be the only entry`);
  if (entries.length === 0 || keyword?.value === 'primary') return { kind: 'primary' };
  if (keyword?.value === 'all') return { kind: 'all' };
  return { kind: 'cidrs', cidrs: entries.map((entry) => entry.cidr()) };
}

function readDuration(field: Field): number {
  const milliseconds = parseDuration(field.string());
  return milliseconds ?? field.fail('must be a duration such as 30s, 1m0s or 500ms');
}

/** host:port, [ipv6]:port, or a bare IP that gets the default's port, as kube-proxy accepts them. */
function readBindAddress(field: Field, fallback: string): string {
  if (field.absent || field.value === '') return fallback;
  const text = field.string();
  const defaultPort = fallback.slice(fallback.lastIndexOf(':') + 1);
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  const [host, port] = match ? [match[1]!, match[2]!] : [text, defaultPort];
  const ip = new Field(host, field.path).ip();
  const portNumber = Number(port);
  if (!Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535) field.fail('must have a port from 1 to 65535');
  return ip.includes(':') ? `[${ip}]:${portNumber}` : `${ip}:${portNumber}`;
}

/** The rule-shaping part of the config; masquerade settings come from the section of the backend in use. */
export function computeConfig(config: FerryConfig, backend: BackendName): ComputeConfig {
  return {
    clusterCIDRs: config.clusterCIDRs,
    detectLocalMode: config.detectLocalMode,
    nodePortAddresses: config.nodePortAddresses,
    masqueradeBit: config[CONFIG_SECTION[backend]].masqueradeBit,
    masqueradeAll: config[CONFIG_SECTION[backend]].masqueradeAll,
  };
}
