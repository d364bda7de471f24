// Reads a kube-proxy KubeProxyConfiguration document into ferry's config, warning about what ferry ignores.
import { parseDocument } from 'yaml';
import type { ComputeConfig } from '../compute/compute.js';
import { Field, FieldError, isRecord } from '../model/fields.js';
import { familyOf } from '../model/ip.js';
import { parseDuration } from './duration.js';

export type Backend = 'nftables' | 'iptables';

/** ferry's configuration; every field has a default, so no file means defaults. */
export interface FerryConfig {
  /** From `mode`; undefined when the file does not say (the CLI then uses nftables). */
  mode: Backend | undefined;
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
};

const API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1';
const BACKEND_FIELDS = ['masqueradeBit', 'masqueradeAll', 'syncPeriod', 'minSyncPeriod'];
const HONOURED = new Set(['apiVersion', 'kind', 'mode', 'clusterCIDR', 'detectLocalMode', 'nodePortAddresses', 'syncPeriod',
  'minSyncPeriod', 'metricsBindAddress', 'healthzBindAddress', 'iptables', 'nftables']);
// Fields kube-proxy knows that ferry does not use: ignored with a warning, not called unknown.
const KUBE_PROXY_FIELDS = new Set(['bindAddress', 'bindAddressHardFail', 'clientConnection', 'configSyncPeriod', 'conntrack',
  'detectLocal', 'enableProfiling', 'featureGates', 'hostnameOverride', 'ipvs', 'linux', 'logging', 'oomScoreAdj', 'portRange',
  'showHiddenMetricsForVersion', 'udpIdleTimeout', 'winkernel', 'windowsRunAsService']);

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
  if (modeField.value === 'ipvs' || modeField.value === 'kernelspace') modeField.fail('is not supported by ferry (use nftables or iptables)');
  const mode = modeField.oneOf(['', 'iptables', 'nftables'] as const, '');
  const clusterCIDRs = readClusterCIDRs(root.get('clusterCIDR'));
  const detectLocalField = root.get('detectLocalMode');
  const detectLocalMode = detectLocalField.absent || detectLocalField.value === ''
    ? (clusterCIDRs.length > 0 ? 'ClusterCIDR' : 'NodeCIDR')
    : readDetectLocalMode(detectLocalField);
  const backend = (name: Backend) => ({
    masqueradeBit: root.get(name).get('masqueradeBit').integer(0, 31, 14),
    masqueradeAll: root.get(name).get('masqueradeAll').boolean(false),
  });
  const selected: Backend = mode === '' ? 'nftables' : mode;
  const other: Backend = selected === 'nftables' ? 'iptables' : 'nftables';
  // v1alpha1 keeps the periods per backend; newer versions moved them to the top level.
  const period = (name: string, fallback: number) => {
    for (const field of [root.get(name), root.get(selected).get(name), root.get(other).get(name)]) {
      if (!field.absent) return readDuration(field);
    }
    return fallback;
  };
  const syncPeriodMs = period('syncPeriod', defaultConfig.syncPeriodMs);
  const minSyncPeriodMs = period('minSyncPeriod', defaultConfig.minSyncPeriodMs);
  if (syncPeriodMs <= 0) new Field(syncPeriodMs, 'syncPeriod').fail('must be longer than 0s (milliseconds shown)');
  if (minSyncPeriodMs > syncPeriodMs) new Field(minSyncPeriodMs, 'minSyncPeriod').fail(`must not be longer than syncPeriod (${syncPeriodMs} ms; milliseconds shown)`);

  return {
    config: {
      mode: mode === '' ? undefined : mode,
      clusterCIDRs,
      detectLocalMode,
      nodePortAddresses: readNodePortAddresses(root.get('nodePortAddresses')),
      iptables: backend('iptables'),
      nftables: backend('nftables'),
      syncPeriodMs,
      minSyncPeriodMs,
      metricsBindAddress: readBindAddress(root.get('metricsBindAddress'), defaultConfig.metricsBindAddress),
      healthzBindAddress: readBindAddress(root.get('healthzBindAddress'), defaultConfig.healthzBindAddress),
    },
    warnings,
  };
}

function ignoredFields(config: Record<string, unknown>): string[] {
  const warnings: string[] = [];
  for (const [key, value] of Object.entries(config)) {
    if (KUBE_PROXY_FIELDS.has(key)) warnings.push(...leafPaths(value, key).map((path) => `config: ${path} is not used by ferry (ignored)`));
    else if (!HONOURED.has(key)) warnings.push(`config: ${key} is unknown (ignored)`);
    else if ((key === 'iptables' || key === 'nftables') && isRecord(value)) {
      for (const inner of Object.keys(value)) {
        if (!BACKEND_FIELDS.includes(inner)) warnings.push(`config: ${key}.${inner} is not used by ferry (ignored)`);
      }
    }
  }
  return warnings;
}

/** Dotted paths of the leaves under a value, so a warning names the exact field. */
function leafPaths(value: unknown, path: string): string[] {
  if (!isRecord(value) || Object.keys(value).length === 0) return [path];
  return Object.entries(value).flatMap(([key, inner]) => leafPaths(inner, `${path}.${key}`));
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
export function computeConfig(config: FerryConfig, backend: Backend): ComputeConfig {
  return {
    clusterCIDRs: config.clusterCIDRs,
    detectLocalMode: config.detectLocalMode,
    nodePortAddresses: config.nodePortAddresses,
    masqueradeBit: config[backend].masqueradeBit,
    masqueradeAll: config[backend].masqueradeAll,
  };
}
