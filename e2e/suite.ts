// Registers every scenario against one cluster per backend (for the namespace cluster, one ava test
// file per backend, so the two backends run in parallel worker processes).
import test from 'ava';
import { Cluster } from './cluster.js';
import type { ClusterDriver } from './driver.js';
import type { BackendName } from '../dataplane/backend-names.js';
import { clusterSpec, scenarios } from './scenarios.js';

/** Registers the scenarios for a backend on a cluster that `create` builds (default: a namespace cluster). */
export function registerScenarios(backend: BackendName, create: () => Promise<ClusterDriver & { destroy(): Promise<void> }> = () => Cluster.create(clusterSpec)): void {
  let cluster: (ClusterDriver & { destroy(): Promise<void> }) | undefined;
  test.before(async () => {
    cluster = await create();
  });
  test.after.always(async () => {
    await cluster?.destroy();
  });
  for (const scenario of scenarios) {
    test.serial(`kernel: e2e ${backend}: ${scenario.title}`, async (t) => {
      // ava's timeout restarts at every assertion; a step (an agent's start, an apply) waits for events
      // that a busy 2-core machine can delay by tens of seconds, and settle gives up after 90 s.
      t.timeout(120_000);
      await scenario.run(cluster!, t, backend);
    });
  }
}
