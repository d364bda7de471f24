// Builders for raw Kubernetes objects as the API returns them, so tests read like the cluster they describe.
import type { ComputeConfig } from '../../controlplane/compute/compute.js';
import { buildClusterState } from '../../controlplane/model/cluster-state.js';
import type { ClusterState } from '../../controlplane/model/types.js';
import { plan } from './address-plan.js';

type NodeName = keyof typeof plan.nodes;

/** A Node of the address plan, dual-stack; `zone` becomes its topology.kubernetes.io/zone label. */
export function nodeObject(name: NodeName, zone?: string) {
  const node = plan.nodes[name];
  const addresses: { type: string; address: string }[] = [
    { type: 'InternalIP', address: node.ipv4 }, { type: 'InternalIP', address: node.ipv6 }, { type: 'Hostname', address: name },
  ];
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, ...(zone === undefined ? {} : { labels: { 'topology.kubernetes.io/zone': zone } }) },
    spec: { podCIDR: node.podCIDR.ipv4, podCIDRs: [node.podCIDR.ipv4, node.podCIDR.ipv6] },
    status: { addresses },
  };
}

export interface ServiceSpec {
  name?: string;
  namespace?: string;
  type?: string;
  clusterIPs?: string[];
  ports?: Record<string, unknown>[];
  [field: string]: unknown;
}

/** A Service named web in namespace default with one TCP port 80 (named http) unless told otherwise. */
export function serviceObject(spec: ServiceSpec = {}, status?: Record<string, unknown>) {
  const { name = 'web', namespace = 'default', clusterIPs = ['10.96.0.20'], ports = [{ name: 'http', port: 80, protocol: 'TCP' }], ...rest } = spec;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { type: 'ClusterIP', clusterIP: clusterIPs[0], clusterIPs, ports, ...rest },
    ...(status ? { status } : {}),
  };
}

export interface EndpointSpec {
  ip: string;
  node?: NodeName | '';
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  /** Topology hints: the zones and nodes it is for. */
  zones?: string[];
  nodes?: string[];
}

/** An EndpointSlice for a Service, its port named http and numbered 8080 unless told otherwise. */
export function sliceObject(service: string, endpoints: EndpointSpec[], options: { namespace?: string; name?: string; ports?: Record<string, unknown>[]; addressType?: string } = {}) {
  const addressType = options.addressType ?? (endpoints[0]?.ip.includes(':') ? 'IPv6' : 'IPv4');
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: options.name ?? `${service}-${addressType.toLowerCase()}`, namespace: options.namespace ?? 'default', labels: { 'kubernetes.io/service-name': service } },
    addressType,
    endpoints: endpoints.map((endpoint) => ({
      addresses: [endpoint.ip],
      conditions: {
        ready: endpoint.ready ?? true,
        ...(endpoint.serving === undefined ? {} : { serving: endpoint.serving }),
        ...(endpoint.terminating === undefined ? {} : { terminating: endpoint.terminating }),
      },
      ...(endpoint.node ? { nodeName: endpoint.node } : {}),
      ...(endpoint.zones || endpoint.nodes ? {
        hints: {
          ...(endpoint.zones ? { forZones: endpoint.zones.map((name) => ({ name })) } : {}),
          ...(endpoint.nodes ? { forNodes: endpoint.nodes.map((name) => ({ name })) } : {}),
        },
      } : {}),
    })),
    ports: options.ports ?? [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

/** The validated state of the three plan nodes plus the given objects; fails on any model error. */
export function clusterState(...objects: unknown[]): ClusterState {
  const { state, errors } = buildClusterState([nodeObject('node-a'), nodeObject('node-b'), nodeObject('node-c'), ...objects]);
  if (errors.length > 0) throw new Error(`unexpected model errors: ${JSON.stringify(errors)}`);
  return state;
}

/** The proxy configuration most tests compute with: the plan's cluster CIDRs, kube-proxy's defaults otherwise. */
export const testConfig: ComputeConfig = {
  clusterCIDRs: [plan.clusterCIDR.ipv4, plan.clusterCIDR.ipv6],
  detectLocalMode: 'ClusterCIDR',
  nodePortAddresses: { kind: 'primary' },
  masqueradeBit: 14,
  masqueradeAll: false,
};
