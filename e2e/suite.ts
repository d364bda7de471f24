// Registers every scenario against one namespace cluster per backend (one ava test file per backend,
// so the two backends run in parallel worker processes).
import test from 'ava';
import { Cluster } from './cluster.js';
import type { Backend } from './driver.js';
import { clusterSpec, scenarios } from './scenarios.js';

export function registerScenarios(backend: Backend): void {
  let cluster: Cluster | undefined;
  test.before(async () => {
    cluster = await Cluster.create(clusterSpec);
  });
  test.after.always(async () => {
    await cluster?.destroy();
  });
  for (const scenario of scenarios) {
    test.serial(`kernel: e2e ${backend}: ${scenario.title}`, async (t) => {
      t.timeout(60_000);
      await scenario.run(cluster!, t, backend);
    });
  }
}
