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
  /** CIDRs allowed to reach the load-balancer IPs; empty means everyone. */
  loadBalancerSourceRanges: string[];
  externalTrafficPolicy: TrafficPolicy;
  internalTrafficPolicy: TrafficPolicy;
  /** ClientIP affinity timeout in seconds; 0 means no affinity. */
  affinitySeconds: number;
  healthCheckNodePort: number;
  /** From the ferry.dev/balancing annotation; undefined follows the agent's --balancing. */
  balancing: Balancing | undefined;
}

/** How new connections are spread: by measured load (ferry's default) or uniformly (kube-proxy). */
export type Balancing = 'least-busy' | 'uniform';

/** Endpoint conditions with the API's defaults already applied (ready and serving default to true). */
export interface EndpointConditions {
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

/** One address of an EndpointSlice. */
export interface Endpoint {
  ip: string;
  nodeName: string;
  conditions: EndpointConditions;
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
}

/** Why an object was left out of the model: which object, which field, and the value received. */
export interface ModelError {
  kind: string;
  /** namespace/name, or name for cluster-scoped objects. */
  object: string;
  field: string;
  message: string;
}
