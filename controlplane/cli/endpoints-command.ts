// `ferry endpoints`: which endpoints each Service port has, where they came from, their topology hints,
// and (with --node) which of them that node's rules use after the traffic policies and the hints.
import { readFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { computeNodeRules, serviceEndpoints } from '../compute/compute.js';
import { topologyMode } from '../compute/topology.js';
import { computeConfig, defaultConfig, parseKubeProxyConfiguration } from '../config/kube-proxy-config.js';
import { ClusterIndex } from '../model/cluster-index.js';
import { buildClusterState } from '../model/cluster-state.js';
import type { ClusterState, EndpointSlice, IPFamily } from '../model/types.js';
import { readManifests } from '../sources/manifests.js';
import { DEFAULT_BACKEND } from '../../dataplane/backend-names.js';

export interface EndpointsOptions {
  namespace?: string;
  file: string[];
  node?: string;
  config?: string;
  output: 'table' | 'yaml';
}

/** The text `ferry endpoints` prints, and the warnings and errors to report on stderr. */
export async function endpointsReport(service: string | undefined, options: EndpointsOptions): Promise<{ text: string; messages: string[] }> {
  const { state, errors, warnings } = buildClusterState(await readManifests(options.file));
  const messages = [...errors, ...warnings].map((problem) => `${problem.kind} ${problem.object}: ${problem.message}`);
  // As kubectl: a named Service is looked up in `default` unless -n says otherwise; without a name, every namespace.
  const namespace = options.namespace ?? (service ? 'default' : undefined);
  const services = state.services.filter((candidate) => (!service || candidate.name === service) && (!namespace || candidate.namespace === namespace));
  if (service && services.length === 0) throw new Error(`Service ${namespace}/${service} is not in the input`);
  if (options.output === 'yaml') return { text: derivedSlicesYaml(state, services.map((s) => `${s.namespace}/${s.name}`)), messages };
  return { text: await table(state, services, options), messages };
}

async function table(state: ClusterState, services: ClusterState['services'], options: EndpointsOptions): Promise<string> {
  const config = options.config ? parseKubeProxyConfiguration(await readFile(options.config, 'utf8'), options.config).config : defaultConfig;
  const rules = options.node ? computeNodeRules(state, options.node, computeConfig(config, config.mode ?? DEFAULT_BACKEND)) : undefined;
  const node = rules && state.nodes.find((candidate) => candidate.name === rules.node);
  const index = ClusterIndex.of(state);
  const header = ['SERVICE', 'PORT', 'ENDPOINT', 'NODE', 'READY', 'SERVING', 'TERMINATING', 'SOURCE', 'HINTS', ...(rules ? ['LOCAL', 'TOPOLOGY', 'USED BY THIS NODE'] : [])];
  const rows: string[][] = [];
  for (const service of services) {
    for (const port of service.ports) {
      for (const family of ['IPv4', 'IPv6'] as IPFamily[]) {
        const portRules = rules?.families.find((f) => f.family === family)?.servicePorts.find((p) => p.id === `${service.namespace}/${service.name}:${port.name || port.port}/${port.protocol.toLowerCase()}`);
        const endpoints = serviceEndpoints(index, service, port, family);
        // The hints this node follows for the port's cluster endpoints (Local policies ignore them).
        const topology = (node && portRules?.cluster && topologyMode(endpoints, node)) || '-';
        for (const endpoint of endpoints) {
          const inGroup = (group: 'cluster' | 'local') => portRules?.[group]?.endpoints.some((target) => target.ip === endpoint.ip && target.port === endpoint.port) ?? false;
          const used = [inGroup('cluster') ? 'cluster' : '', inGroup('local') ? 'local' : ''].filter(Boolean).join('+') || '-';
          const address = endpoint.ip.includes(':') ? `[${endpoint.ip}]:${endpoint.port}` : `${endpoint.ip}:${endpoint.port}`;
          rows.push([
            `${service.namespace}/${service.name}`, `${port.name || '-'} ${port.port}/${port.protocol}`, address, endpoint.nodeName || '-',
            String(endpoint.conditions.ready), String(endpoint.conditions.serving), String(endpoint.conditions.terminating), endpoint.source,
            [...endpoint.hints.zones.map((zone) => `zone=${zone}`), ...endpoint.hints.nodes.map((name) => `node=${name}`)].join(',') || '-',
            ...(rules ? [endpoint.nodeName === rules.node ? 'yes' : 'no', topology, used] : []),
          ]);
        }
      }
    }
  }
  if (rows.length === 0) return 'no endpoints\n';
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  return [header, ...rows].map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()).join('\n') + '\n';
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
