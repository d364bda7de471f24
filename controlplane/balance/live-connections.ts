// Reads conntrack's listing into live connections per endpoint: the balancer's only signal.
import { endpointKey } from '../../rules/names.js';
import type { L4Protocol } from '../../rules/node-rules.js';

/**
 * Counts, per endpoint key, the DNATed entries of a `conntrack -L` listing: established TCP
 * connections and UDP flows (conntrack keeps a UDP flow for 30 s after its last packet, 120 s once
 * it saw a reply, so these are the recent ones). The endpoint is the reply direction's source.
 */
export function liveConnections(listing: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of listing.split('\n')) {
    const protocol = line.slice(0, line.indexOf(' ')) as L4Protocol;
    if (protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'sctp') continue;
    if (protocol === 'tcp' && !/ ESTABLISHED /.test(line)) continue;
    const sources = [...line.matchAll(/ src=(\S+)/g)].map((match) => match[1]!);
    const ports = [...line.matchAll(/ sport=(\d+)/g)].map((match) => Number(match[1]));
    const destination = / dst=(\S+)/.exec(line)?.[1];
    const [replyIP, replyPort] = [sources[1], ports[1]];
    // Only connections that were DNATed: the reply comes from somewhere other than where they went.
    if (replyIP === undefined || replyPort === undefined || replyIP === destination) continue;
    const key = endpointKey(protocol, replyIP, replyPort);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}
