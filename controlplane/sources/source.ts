// What the agent needs from wherever the cluster's objects come from (the API or a manifests directory).

/** A live view of the cluster's raw objects. */
export interface ObjectSource {
  /** Starts following the cluster; resolves once a complete first view is there. `onChange` fires after every change. */
  start(onChange: () => void): Promise<void>;
  /** The latest complete view: Services, EndpointSlices, Nodes and ServiceCIDRs as the API holds them. */
  objects(): unknown[];
  /** Resolves once following has stopped; a start() still waiting for its first view resolves too. */
  stop(): Promise<void>;
  /** What start() waits for, in words for the health endpoints ("the API server"). */
  readonly description?: string;
}
