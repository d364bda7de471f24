// What the agent's /balancer answers (and `ferry top` shows): per Service port and endpoint, the live
// connections of the last sample, the smoothed load, the integer weight in the rules last synced and
// its share of new connections. Pure: the last synced NodeRules, the BalanceState and the last sample in.
import type { BalanceState } from '../balance/balance.js';
import { endpointKey } from '../../rules/names.js';
import type { Balancing, IPFamily } from '../model/types.js';
import type { BackendName } from '../../dataplane/backend-names.js';
import { anyAddress, type FrontendKind } from '../../rules/frontends.js';
import type { EndpointGroup, L4Protocol, NodeRules, ServicePortRules } from '../../rules/node-rules.js';

/** One balancer sample: live connections per endpoint key, and when (Unix ms) they were counted. */
export interface BalancerSample {
  at: number;
  connections: ReadonlyMap<string, number>;
}

/** An endpoint's place in one endpoint group: its integer weight in the rules and weight / group total. */
export interface GroupShare {
  weight: number;
  share: number;
}

export interface BalancerEndpoint {
  ip: string;
  port: number;
  /** On this node (or on none the slice names). */
  onNode: boolean;
  /** Live connections this node had to it at the last sample; null when it was not sampled yet. */
  connections: number | null;
  /** The balancer's moving average of those; null when it was not sampled yet. */
  load: number | null;
  /**
   * The relative weight the balancer published for it (1: not busier than its group's mean): what the
   * rules hold after the sync that follows a change. A Service that balances uniformly ignores it.
   */
  balancerWeight: number;
  /** In the cluster group (kube-proxy's SVC chain), when the rules have one. */
  cluster: GroupShare | null;
  /** In the local group (SVL chain: this node's endpoints, for Local traffic policies), when there is one. */
  local: GroupShare | null;
}

/** An address the Service port answers on: cluster IP, external or load-balancer IP, node port (any address). */
export interface BalancerFrontend {
  kind: FrontendKind;
  address: string;
  port: number;
}

export interface BalancerPort {
  /** namespace/name:port/protocol, as the rules' comments name it. */
  id: string;
  namespace: string;
  name: string;
  family: IPFamily;
  protocol: L4Protocol;
  frontends: BalancerFrontend[];
  /** The cluster group's endpoints, then the local group's that are not in it, in the rules' order. */
  endpoints: BalancerEndpoint[];
}

export interface BalancerView {
  node: string;
  backend: BackendName;
  /** The agent's --balancing: what Services without a ferry.dev/balancing annotation do. */
  balancing: Balancing;
  /** When the last sample was taken (ISO 8601); null before the first. */
  sampledAt: string | null;
  /** When the rules below were last synced to the kernel; null before the first sync. */
  syncedAt: string | null;
  servicePorts: BalancerPort[];
}

export interface BalancerInput {
  node: string;
  backend: BackendName;
  balancing: Balancing;
  /** The rules the kernel holds since the last successful sync. */
  rules: NodeRules | undefined;
  syncedAt: Date | undefined;
  state: BalanceState;
  sample: BalancerSample | undefined;
}

/** The /balancer document. */
export function balancerView(input: BalancerInput): BalancerView {
  const { rules, state, sample } = input;
  return {
    node: input.node,
    backend: input.backend,
    balancing: input.balancing,
    sampledAt: sample ? new Date(sample.at).toISOString() : null,
    syncedAt: input.syncedAt?.toISOString() ?? null,
    servicePorts: (rules?.families ?? []).flatMap((family) => family.servicePorts.map((port) => portView(port, family.family, state, sample))),
  };
}

function portView(port: ServicePortRules, family: IPFamily, state: BalanceState, sample: BalancerSample | undefined): BalancerPort {
  const cluster = shares(port.protocol, port.cluster);
  const local = shares(port.protocol, port.local);
  const targets = [...(port.cluster?.endpoints ?? []), ...(port.local?.endpoints ?? [])];
  const seen = new Set<string>();
  const endpoints: BalancerEndpoint[] = [];
  for (const target of targets) {
    const key = endpointKey(port.protocol, target.ip, target.port);
    if (seen.has(key)) continue;
    seen.add(key);
    const load = state.loads.get(key);
    endpoints.push({
      ip: target.ip,
      port: target.port,
      onNode: target.onNode,
      connections: sample?.connections.get(key) ?? null,
      load: load === undefined ? null : Math.round(load * 1000) / 1000,
      balancerWeight: state.weights.get(key) ?? 1,
      cluster: cluster.get(key) ?? null,
      local: local.get(key) ?? null,
    });
  }
  const [namespace = '', name = ''] = port.id.slice(0, port.id.indexOf(':')).split('/');
  return { id: port.id, namespace, name, family, protocol: port.protocol, frontends: frontends(port, family), endpoints };
}

function shares(protocol: L4Protocol, group: EndpointGroup | undefined): Map<string, GroupShare> {
  const endpoints = group?.endpoints ?? [];
  const total = endpoints.reduce((sum, endpoint) => sum + endpoint.weight, 0);
  return new Map(endpoints.map((endpoint) => [endpointKey(protocol, endpoint.ip, endpoint.port), { weight: endpoint.weight, share: endpoint.weight / total }]));
}

function frontends(port: ServicePortRules, family: IPFamily): BalancerFrontend[] {
  return [
    { kind: 'ClusterIP' as const, address: port.clusterIP, port: port.port },
    ...port.externalIPs.map((address) => ({ kind: 'External' as const, address, port: port.port })),
    ...(port.nodePort > 0 ? [{ kind: 'NodePort' as const, address: anyAddress(family === 'IPv6'), port: port.nodePort }] : []),
  ];
}
