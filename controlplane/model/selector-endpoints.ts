// Endpoints from Pods, as the EndpointSlice controller derives them, for manifests that hold a
// Service's Pods but not its EndpointSlices (the API source never lists Pods, so this is manifests only).
import { familyOf } from './ip.js';
import { printableError } from './printable.js';
import type { ClusterState, Endpoint, EndpointSlice, IPFamily, ModelError, Pod, Service } from './types.js';

const FAMILIES: IPFamily[] = ['IPv4', 'IPv6'];

/** Whether a Pod's labels satisfy an equality-based Service selector (an empty selector selects nothing, as the API does). */
export function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  const entries = Object.entries(selector);
  return entries.length > 0 && entries.every(([key, value]) => labels[key] === value);
}

/**
 * One slice per family and distinct port mapping for every Service with a selector and no slice of
 * its own in the input. A named target port resolves through each Pod's container ports, so two Pods
 * may serve the same Service port on different numbers, and a Pod without that name is not an
 * endpoint of that port.
 */
export function selectorEndpointSlices(state: ClusterState): { slices: EndpointSlice[]; warnings: ModelError[] } {
  // Without any Pod in the input there is nothing to derive from (an API dump holds slices, not Pods).
  if (state.pods.length === 0) return { slices: [], warnings: [] };
  const owned = new Set(state.endpointSlices.map((slice) => `${slice.namespace}/${slice.serviceName}`));
  const slices: EndpointSlice[] = [];
  const warnings: ModelError[] = [];
  for (const service of state.services) {
    if (!service.selector || owned.has(`${service.namespace}/${service.name}`)) continue;
    const pods = state.pods.filter((pod) => pod.namespace === service.namespace && !pod.terminal && selects(service.selector!, pod.labels));
    if (pods.length === 0) {
      warnings.push(printableError({ kind: 'Service', object: `${service.namespace}/${service.name}`, field: 'spec.selector', message: `spec.selector: matches no Pod in the input, got ${JSON.stringify(service.selector)}` }));
      continue;
    }
    for (const family of FAMILIES) slices.push(...familySlices(service, pods, family));
  }
  return { slices, warnings };
}

function familySlices(service: Service, pods: Pod[], family: IPFamily): EndpointSlice[] {
  // Pods that resolve every port to the same numbers share a slice, as the controller groups them.
  const groups = new Map<string, { ports: EndpointSlice['ports']; endpoints: Endpoint[] }>();
  for (const pod of [...pods].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const ip = pod.ips.find((address) => familyOf(address) === family);
    if (!ip) continue;
    const ports = service.ports.flatMap((port) => {
      const number = typeof port.targetPort === 'number'
        ? port.targetPort
        : pod.containerPorts.find((candidate) => candidate.name === port.targetPort && candidate.protocol === port.protocol)?.port;
      return number === undefined ? [] : [{ name: port.name, protocol: port.protocol, port: number }];
    });
    if (ports.length === 0) continue;
    const key = JSON.stringify(ports);
    const group = groups.get(key) ?? { ports, endpoints: [] };
    // The controller's rules: a terminating Pod is not ready unless not-ready addresses are published.
    const ready = service.publishNotReadyAddresses || (pod.ready && !pod.terminating);
    // No hints: the controller sets them only where topology is asked for and zones are known, and a
    // manifests directory has no controller to ask.
    group.endpoints.push({ ip, nodeName: pod.nodeName, conditions: { ready, serving: pod.ready, terminating: pod.terminating }, hints: { zones: [], nodes: [] } });
    groups.set(key, group);
  }
  return [...groups.values()].map((group, index) => ({
    namespace: service.namespace,
    name: `${service.name}-${family.toLowerCase()}-selector${index === 0 ? '' : `-${index}`}`,
    serviceName: service.name,
    source: 'selector' as const,
    family,
    ports: group.ports,
    endpoints: group.endpoints,
  }));
}
