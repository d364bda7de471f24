// Topology-aware routing as kube-proxy does it (pkg/proxy/topology.go): the EndpointSlice controller
// writes hints (for Topology Aware Routing, `service.kubernetes.io/topology-mode: Auto`, and for
// `trafficDistribution`), and the proxy follows them where they can be followed on this node. The
// proxy does not read the annotation or trafficDistribution itself: the hints are the whole input.
import type { Endpoint, Node } from '../model/types.js';

/** Which hints narrow this node's cluster endpoints: its own node's, its zone's, or none. */
export type TopologyMode = 'PreferSameNode' | 'PreferSameZone' | undefined;

/**
 * Only ready endpoints count. Node hints apply when every ready endpoint has one and one of them names
 * this node; otherwise zone hints apply when every ready endpoint has one and one of them names this
 * node's zone; otherwise none do, and every endpoint is used (a half-hinted slice is mid-update, and a
 * zone with no endpoint of its own must not be left with none).
 */
export function topologyMode(endpoints: readonly Endpoint[], node: Pick<Node, 'name' | 'zone'>): TopologyMode {
  const ready = endpoints.filter((endpoint) => endpoint.conditions.ready);
  if (ready.length === 0) return undefined;
  if (ready.every((endpoint) => endpoint.hints.nodes.length > 0) && ready.some((endpoint) => endpoint.hints.nodes.includes(node.name))) return 'PreferSameNode';
  if (node.zone !== '' && ready.every((endpoint) => endpoint.hints.zones.length > 0) && ready.some((endpoint) => endpoint.hints.zones.includes(node.zone))) return 'PreferSameZone';
  return undefined;
}

/** Whether the mode lets this node use the endpoint (the fallback is in the choice of mode, not here). */
export function availableForTopology(endpoint: Endpoint, mode: TopologyMode, node: Pick<Node, 'name' | 'zone'>): boolean {
  switch (mode) {
    case undefined:
      return true;
    case 'PreferSameNode':
      return endpoint.hints.nodes.includes(node.name);
    case 'PreferSameZone':
      return endpoint.hints.zones.includes(node.zone);
  }
}
