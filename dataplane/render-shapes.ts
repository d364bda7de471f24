// What both text backends render alike from NodeRules: the chain a group gets (each backend names
// them), the masquerade rule of a group, where internal and external traffic goes.
import type { EndpointGroup, EndpointTarget, FilterVerdict, ServicePortRules } from '../rules/node-rules.js';
import { ruleComment } from './escape.js';

/** The chain names of one backend: every rendering helper below takes them. */
export interface ChainNames {
  group(port: ServicePortRules, kind: 'cluster' | 'local'): string;
  external(port: ServicePortRules): string;
  firewall(port: ServicePortRules): string;
}

export function endpointDestination(endpoint: Pick<EndpointTarget, 'ip' | 'port'>): string {
  return endpoint.ip.includes(':') ? `[${endpoint.ip}]:${endpoint.port}` : `${endpoint.ip}:${endpoint.port}`;
}

export function groups(port: ServicePortRules): { kind: 'cluster' | 'local'; group: EndpointGroup }[] {
  const result: { kind: 'cluster' | 'local'; group: EndpointGroup }[] = [];
  if (port.cluster) result.push({ kind: 'cluster', group: port.cluster });
  if (port.local) result.push({ kind: 'local', group: port.local });
  return result;
}

export function masqueradeRule(port: ServicePortRules, group: EndpointGroup, localCIDR: string | undefined, host: (ip: string) => string) {
  if (group.clusterIPMasquerade === 'none') return undefined;
  const offCluster = group.clusterIPMasquerade === 'off-cluster' ? localCIDR : undefined;
  return {
    clusterIP: host(port.clusterIP),
    protocol: port.protocol,
    port: port.port,
    offCluster,
    reason: offCluster ? 'off-cluster traffic to the cluster IP' : 'all traffic to the cluster IP',
  };
}

/** Traffic to the cluster IP goes to a group chain or meets a verdict: exactly one of the two. */
export function internalTarget(port: ServicePortRules, names: ChainNames): { chain: string } | { verdict: FilterVerdict } {
  return port.internal === 'cluster' || port.internal === 'local'
    ? { chain: names.group(port, port.internal) }
    : { verdict: port.internal };
}

/** External destinations lead to the external chain whenever there are endpoints at all. */
export function externalTarget(port: ServicePortRules, names: ChainNames): string | undefined {
  return port.external && port.external.verdict !== 'reject' ? names.external(port) : undefined;
}

export function externalChain(port: ServicePortRules, names: ChainNames) {
  const external = port.external!;
  return {
    name: names.external(port),
    local: external.policy === 'Local',
    clusterChain: names.group(port, 'cluster'),
    localChain: external.hasLocalEndpoints ? names.group(port, 'local') : undefined,
    comment: ruleComment(`${port.id} external`),
  };
}
