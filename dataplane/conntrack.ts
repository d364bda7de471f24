// conntrack shell: delete the UDP entries that compute found stale.
import type { StaleFlow } from '../rules/stale-flow.js';
import { DataplaneError, type Runner } from './runner.js';

/** Deletes the matching UDP entries; "nothing matched" (exit 1) is fine. */
export async function deleteStaleFlows(runner: Runner, flows: StaleFlow[]): Promise<void> {
  for (const flow of flows) {
    const args = ['-D', '-f', flow.family === 'IPv4' ? 'ipv4' : 'ipv6', '-p', 'udp'];
    if (flow.origDst) args.push('--orig-dst', flow.origDst);
    if (flow.origPortDst) args.push('--orig-port-dst', String(flow.origPortDst));
    if (flow.dstNat) args.push('--dst-nat', flow.dstNat);
    const result = await runner.run('conntrack', args);
    if (result.exitCode > 1) throw new DataplaneError(`conntrack ${args.join(' ')}`, result, 'deleting stale UDP flows failed');
  }
}
