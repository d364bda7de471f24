// conntrack shell for the balancer: one listing of the DNATed entries of both families.
import { runChecked, type Runner } from './runner.js';

/** The DNATed connections this node knows of, as `conntrack -L` prints them (IPv4 then IPv6). */
export async function listNatedConnections(runner: Runner): Promise<string> {
  let listing = '';
  for (const family of ['ipv4', 'ipv6']) {
    listing += await runChecked(runner, 'listing conntrack entries failed', 'conntrack', ['-L', '-f', family, '--dst-nat']);
  }
  return listing;
}
