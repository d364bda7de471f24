// What the agent needs from wherever the cluster's objects come from (the API or a manifests directory).

import type { ObjectChange } from '../model/cluster-store.js';

/** A live view of the cluster's raw objects. */
export interface ObjectSource {
  /**
   * Starts following the cluster; resolves once a complete first view is there. `onChange` hears every
   * change: one object put or deleted (an informer's events, the initial list's among them), or, with
   * no argument, that objects() holds a new whole view (a manifests directory read again).
   */
  start(onChange: (change?: ObjectChange) => void): Promise<void>;
  /** The latest complete view: Services, EndpointSlices, Nodes and ServiceCIDRs as the API holds them. */
  objects(): unknown[];
  /** Resolves once following has stopped; a start() still waiting for its first view resolves too. */
  stop(): Promise<void>;
  /** What start() waits for, in words for the health endpoints ("the API server"). */
  readonly description?: string;
}
