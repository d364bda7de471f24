// The one interface the e2e scenarios drive a cluster through; the namespace cluster (cluster.ts) and
// the Vagrant cluster (vagrant.ts) implement it, so both run the same scenario code.

import type { BackendName } from '../dataplane/backend-names.js';
import type { TraceAnswer } from '../controlplane/trace/trace.js';

/** Anything that can send or receive traffic: a node, a pod, an external client. */
export interface Host {
  name: string;
  ipv4: string;
  ipv6: string;
}

export type NodeHost = Host;

export interface PodHost extends Host {
  node: string;
}

/** What e2e/probe.ts should do: `count` new connections or datagrams, each TCP connection held `holdMs`. */
export interface ProbeOptions {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
  count?: number;
  timeoutMs?: number;
  holdMs?: number;
  /** UDP: send every datagram from one socket (one conntrack flow), intervalMs apart. */
  reuse?: boolean;
  intervalMs?: number;
}

/** The result of one probe attempt, as e2e/probe.ts prints it. */
export interface ProbeResult {
  ok: boolean;
  server?: string;
  peer?: string;
  port?: number;
  error?: string;
  ms: number;
}

/** A TCP connection a test holds open (ClusterDriver.holdOpen). */
export interface HeldConnection {
  /** Checks that the connection still echoes, closes it and gives the attempt's result. */
  release(): Promise<ProbeResult>;
}

/** An endpoint of a Service: a pod by name, optionally with its conditions and the zones it is hinted for. */
export type EndpointPod = string | { name: string; ready?: boolean; serving?: boolean; terminating?: boolean; zones?: string[] };

/** What a scenario needs from a cluster, whatever it is built from. */
export interface ClusterDriver {
  nodes: ReadonlyMap<string, NodeHost>;
  pods: ReadonlyMap<string, PodHost>;
  externals: readonly Host[];
  /** Makes `objects` (Services, EndpointSlices) the cluster's state and returns once every node's rules hold it. */
  apply(objects: object[], backend: BackendName): Promise<void>;
  probe(from: Host, options: ProbeOptions): Promise<ProbeResult[]>;
  endpointSlices(service: string, pods: EndpointPod[], ports: { name?: string; port: number; protocol?: string }[]): object[];
  /** Routes an external client's traffic for `cidr` through `node`. */
  routeVia(external: Host, cidr: string, node: NodeHost): Promise<void>;
  /**
   * Opens a TCP connection and resolves once it is established; it stays open until released.
   * Optional: a driver without it (Vagrant) holds connections for ProbeOptions.holdMs instead.
   */
  holdOpen?(from: Host, options: ProbeOptions): Promise<HeldConnection>;
  /**
   * `ferry trace -o json` on `node` for a new connection, with the objects last applied. Optional: a
   * driver without it (Vagrant) skips the scenario that compares trace with real packets.
   */
  trace?(node: NodeHost, backend: BackendName, query: { from: string; to: string; port: number; protocol: 'TCP' | 'UDP'; live?: boolean }): Promise<TraceAnswer & { matchesDesired?: boolean }>;
}
