// `ferry endpoints`: which endpoints each Service port has, where they came from, their topology hints,
// and (with --node) which of them that node's rules use after the traffic policies and the hints.
import { readFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { computeNodeRules, serviceEndpoints } from '../compute/compute.js';
import { topologyMode } from '../compute/topology.js';
import { computeConfig, defaultConfig, parseKubeProxyConfiguration } from '../config/kube-proxy-config.js';
import { ClusterIndex, serviceKey } from '../model/cluster-index.js';
import { buildClusterState } from '../model/cluster-state.js';
import { familyOf } from '../model/ip.js';
import type { ClusterState, EndpointSlice, IPFamily, Protocol } from '../model/types.js';
import { DEFAULT_BACKEND } from '../../dataplane/backend-names.js';
import { endpointDestination } from '../../dataplane/render-shapes.js';
import { readInput, type InputOptions } from './pipeline.js';
import { printTable } from './table.js';

/** `-o`: kubectl's table, wide, json and yaml (the same records), and the EndpointSlices derived from Pods. */
export const ENDPOINTS_OUTPUTS = ['table', 'wide', 'json', 'yaml', 'endpointslices'] as const;

export interface EndpointsOptions extends InputOptions {
  namespace?: string;
  /** -A: every namespace (a Service cannot be named then). */
  allNamespaces?: boolean;
  node?: string;
  config?: string;
  output: (typeof ENDPOINTS_OUTPUTS)[number];
}

/** One endpoint of one Service port and family: a row of the table, an item of `-o json` and `-o yaml`. */
export interface EndpointRecord {
  service: string;
  namespace: string;
  name: string;
  port: { name: string; port: number; protocol: Protocol };
  family: IPFamily;
  /** The Service's cluster IP of this family; null when it has none. */
  clusterIP: string | null;
  /** ADDR:PORT, [ADDR]:PORT for IPv6. */
  endpoint: string;
  ip: string;
  targetPort: number;
  node: string | null;
  /** The endpoint's Node's topology.kubernetes.io/zone; null when unknown. */
  zone: string | null;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  source: EndpointSlice['source'];
  /** The EndpointSlice it comes from (derived ones are named as ferry names them). */
  slice: string;
  hints: { zones: string[]; nodes: string[] };
  /** With --node: on that node or not. */
  local?: boolean;
  /** With --node: the topology hints that node follows for the port's cluster endpoints; null for none. */
  topology?: string | null;
  /** With --node: which groups of that node's rules use it. */
  usedBy?: ('cluster' | 'local')[];
}

/** The text `ferry endpoints` prints, and the warnings and errors to report on stderr. */
export async function endpointsReport(service: string | undefined, options: EndpointsOptions): Promise<{ text: string; messages: string[] }> {
  if (service && options.allNamespaces) throw new Error(`a Service cannot be named across all namespaces: give -n NAMESPACE with ${service}, or leave -A out`);
  const input = await readInput(options);
  const { state, errors, warnings } = buildClusterState(input.objects);
  const messages = [...errors, ...warnings].map((problem) => `${problem.kind} ${problem.object}: ${problem.message}`);
  // As kubectl: -n, else the kubeconfig context's namespace, else `default`; -A every namespace.
  const namespace = options.allNamespaces ? undefined : options.namespace ?? input.namespace ?? 'default';
  const services = state.services.filter((candidate) => (!service || candidate.name === service) && (!namespace || candidate.namespace === namespace));
  if (service && services.length === 0) throw new Error(`Service ${namespace}/${service} is not in ${input.description}`);
  if (options.output === 'endpointslices') return { text: derivedSlicesYaml(state, services.map((s) => `${s.namespace}/${s.name}`)), messages };
  const records = await endpointRecords(state, services, options);
  if (options.output === 'json') return { text: `${JSON.stringify({ ...(options.node ? { node: options.node } : {}), endpoints: records }, null, 2)}\n`, messages };
  if (options.output === 'yaml') return { text: stringify({ ...(options.node ? { node: options.node } : {}), endpoints: records }), messages };
  if (records.length === 0) return { text: `no endpoints${namespace ? ` in namespace ${namespace}` : ''}\n`, messages };
  return { text: table(records, options.node !== undefined, options.output === 'wide'), messages };
}

async function endpointRecords(state: ClusterState, services: ClusterState['services'], options: EndpointsOptions): Promise<EndpointRecord[]> {
  const config = options.config ? parseKubeProxyConfiguration(await readFile(options.config, 'utf8'), options.config).config : defaultConfig;
  const rules = options.node ? computeNodeRules(state, options.node, computeConfig(config, config.mode ?? DEFAULT_BACKEND)) : undefined;
  const node = rules && state.nodes.find((candidate) => candidate.name === rules.node);
  const zones = new Map(state.nodes.map((candidate) => [candidate.name, candidate.zone]));
  const index = ClusterIndex.of(state);
  const records: EndpointRecord[] = [];
  for (const service of services) {
    for (const port of service.ports) {
      for (const family of ['IPv4', 'IPv6'] as IPFamily[]) {
        const portRules = rules?.families.find((f) => f.family === family)?.servicePorts.find((p) => p.id === `${service.namespace}/${service.name}:${port.name || port.port}/${port.protocol.toLowerCase()}`);
        const endpoints = serviceEndpoints(index, service, port, family);
        // The hints this node follows for the port's cluster endpoints (Local policies ignore them).
        const topology = (node && portRules?.cluster && topologyMode(endpoints, node)) || null;
        const slices = index.slicesOf(family, serviceKey(service.namespace, service.name));
        for (const endpoint of endpoints) {
          const inGroup = (group: 'cluster' | 'local') => portRules?.[group]?.endpoints.some((target) => target.ip === endpoint.ip && target.port === endpoint.port) ?? false;
          // The first slice that holds it, as serviceEndpoints takes it.
          const slice = slices.find((candidate) => candidate.ports.some((p) => p.name === port.name && p.protocol === port.protocol && p.port === endpoint.port)
            && candidate.endpoints.some((e) => e.ip === endpoint.ip));
          records.push({
            service: `${service.namespace}/${service.name}`, namespace: service.namespace, name: service.name,
            port: { name: port.name, port: port.port, protocol: port.protocol }, family,
            clusterIP: service.clusterIPs.find((ip) => familyOf(ip) === family) ?? null,
            endpoint: endpointDestination(endpoint),
            ip: endpoint.ip, targetPort: endpoint.port, node: endpoint.nodeName || null, zone: zones.get(endpoint.nodeName) || null,
            ready: endpoint.conditions.ready, serving: endpoint.conditions.serving, terminating: endpoint.conditions.terminating,
            source: endpoint.source, slice: slice?.name ?? '', hints: { zones: [...endpoint.hints.zones], nodes: [...endpoint.hints.nodes] },
            ...(rules ? { local: endpoint.nodeName === rules.node, topology, usedBy: (['cluster', 'local'] as const).filter(inGroup) } : {}),
          });
        }
      }
    }
  }
  return records;
}

/** The table of the records: with --node three columns more, and -o wide the family, cluster IP, slice and zone. */
function table(records: EndpointRecord[], withNode: boolean, wide: boolean): string {
  const header = ['SERVICE', 'PORT', 'ENDPOINT', 'NODE', 'READY', 'SERVING', 'TERMINATING', 'SOURCE', 'HINTS',
    ...(withNode ? ['LOCAL', 'TOPOLOGY', 'USED BY THIS NODE'] : []), ...(wide ? ['FAMILY', 'CLUSTER-IP', 'SLICE', 'ZONE'] : [])];
  const rows = records.map((record) => [
    record.service, `${record.port.name || '-'} ${record.port.port}/${record.port.protocol}`, record.endpoint, record.node ?? '-',
    String(record.ready), String(record.serving), String(record.terminating), record.source,
    [...record.hints.zones.map((zone) => `zone=${zone}`), ...record.hints.nodes.map((name) => `node=${name}`)].join(',') || '-',
    ...(withNode ? [record.local ? 'yes' : 'no', record.topology ?? '-', record.usedBy?.join('+') || '-'] : []),
    ...(wide ? [record.family, record.clusterIP ?? '-', record.slice || '-', record.zone ?? '-'] : []),
  ]);
  return printTable(header, rows);
}

/** The derived slices as discovery.k8s.io/v1 objects, to feed back or compare with a live cluster. */
function derivedSlicesYaml(state: ClusterState, services: string[]): string {
  const derived = state.endpointSlices.filter((slice) => slice.source === 'selector' && services.includes(`${slice.namespace}/${slice.serviceName}`));
  return stringify({ apiVersion: 'v1', kind: 'List', items: derived.map(sliceObject) });
}

function sliceObject(slice: EndpointSlice): object {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: slice.name, namespace: slice.namespace, labels: { 'kubernetes.io/service-name': slice.serviceName, 'endpointslice.kubernetes.io/managed-by': 'ferry' } },
    addressType: slice.family,
    endpoints: slice.endpoints.map((endpoint) => ({ addresses: [endpoint.ip], conditions: endpoint.conditions, ...(endpoint.nodeName ? { nodeName: endpoint.nodeName } : {}) })),
    ports: slice.ports.map((port) => ({ name: port.name, port: port.port, protocol: port.protocol })),
  };
}
