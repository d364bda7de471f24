// The validated, typed cluster model: everything compute needs and nothing it has to check again.

/** An IP family as Kubernetes names it. */
export type IPFamily = 'IPv4' | 'IPv6';

/** Transport protocols a Service port can carry. */
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer';

export type TrafficPolicy = 'Cluster' | 'Local';

/** One port of a Service, as the Service spec declares it. */
export interface ServicePort {
  /** Port name; '' for the single unnamed port. Matches the EndpointSlice port of the same name. */
  name: string;
  protocol: Protocol;
  port: number;
  /** 0 when the Service has no node port for this port. */
  nodePort: number;
  /** The Pods' port: a number, or the name of a container port (resolved per Pod). */
  targetPort: number | string;
}

/** A Service that has virtual IPs (headless and ExternalName Services never reach the model). */
export interface Service {
  namespace: string;
  name: string;
  type: ServiceType;
  /** One cluster IP per family, in spec order. */
  clusterIPs: string[];
  ports: ServicePort[];
  externalIPs: string[];
  /** status.loadBalancer.ingress IPs that the node proxies (ipMode Proxy is excluded). */
  loadBalancerIPs: string[];
  /**
   * CIDRs allowed to reach the load-balancer IPs from outside; undefined when none are given (everyone).
   * Ranges given of which none could be read leave it empty: nobody (ferry fails closed).
   */
  loadBalancerSourceRanges: string[] | undefined;
  externalTrafficPolicy: TrafficPolicy;
  internalTrafficPolicy: TrafficPolicy;
  /** ClientIP affinity timeout in seconds; 0 means no affinity. */
  affinitySeconds: number;
  healthCheckNodePort: number;
  /** From the ferry.dev/balancing annotation; undefined follows the agent's --balancing. */
  balancing: Balancing | undefined;
  /** spec.selector; undefined for a Service without one (its endpoints are managed by hand). */
  selector: Record<string, string> | undefined;
  /** Not-ready Pods count as ready endpoints (for DNS of StatefulSets, for example). */
  publishNotReadyAddresses: boolean;
}

/** How new connections are spread: by measured load (ferry's default) or uniformly (kube-proxy). */
export type Balancing = 'least-busy' | 'uniform';

/** Endpoint conditions with the API's defaults already applied (ready and serving default to true); shared between endpoints, so read-only. */
export interface EndpointConditions {
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
}

/** One address of an EndpointSlice. */
export interface Endpoint {
  ip: string;
  nodeName: string;
  conditions: EndpointConditions;
  /** Topology hints (the slice's `hints.forZones` and `hints.forNodes`): where the controller wants it used. */
  hints: EndpointHints;
}

/** Zone and node names an endpoint is hinted for; empty when the slice gives none (one empty object shared, so read-only). */
export interface EndpointHints {
  readonly zones: readonly string[];
  readonly nodes: readonly string[];
}

/** A port of an EndpointSlice: the resolved target port for the Service port of the same name. */
export interface EndpointPort {
  name: string;
  protocol: Protocol;
  port: number;
}

/** An EndpointSlice of one address family, owned by the Service named in its label. */
export interface EndpointSlice {
  namespace: string;
  name: string;
  serviceName: string;
  /** Given in the input, or derived from Pods and the Service's selector (manifests without slices). */
  source: 'EndpointSlice' | 'selector';
  family: IPFamily;
  ports: EndpointPort[];
  endpoints: Endpoint[];
}

/** The parts of a Node object that shape its rules. */
export interface Node {
  name: string;
  /** InternalIP addresses first, then ExternalIP, in status order. */
  internalIPs: string[];
  externalIPs: string[];
  podCIDRs: string[];
  /** Its `topology.kubernetes.io/zone` label, '' when it has none. */
  zone: string;
}

/** The parts of a Pod that make it an endpoint (manifests mode only: the API source does not list Pods). */
export interface Pod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** status.podIPs, one per family. */
  ips: string[];
  nodeName: string;
  /** The Ready condition is True. */
  ready: boolean;
  /** metadata.deletionTimestamp is set. */
  terminating: boolean;
  /** Succeeded and Failed Pods are never endpoints. */
  terminal: boolean;
  containerPorts: { name: string; port: number; protocol: Protocol }[];
}

/** A networking.k8s.io/v1 ServiceCIDR: the ranges cluster IPs are allocated from. */
export interface ServiceCIDR {
  name: string;
  cidrs: string[];
}

/** Everything the sources know about the cluster, validated. */
export interface ClusterState {
  services: Service[];
  endpointSlices: EndpointSlice[];
  nodes: Node[];
  serviceCIDRs: ServiceCIDR[];
  pods: Pod[];
}

/** Why an object was left out of the model: which object, which field, and the value received. */
export interface ModelError {
  kind: string;
  /** namespace/name, or name for cluster-scoped objects. */
  object: string;
  field: string;
  message: string;
}
