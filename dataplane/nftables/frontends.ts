// ferry's nftables tables read back as Service frontends (`ferry services`): the maps say which
// address, port and protocol leads where; the chains they lead to say which endpoints a connection can
// reach and with which chance (`numgen random mod N < k`, tried one after another).
import { anyAddress, cidrOf, sequentialProbabilities, sortFrontends, type ServiceFrontend } from '../../rules/frontends.js';
import type { L4Protocol } from '../../rules/node-rules.js';
import { compareText } from '../../rules/port-changes.js';
import { DataplaneError, type Runner } from '../runner.js';

/** One statement of a rule in `nft -j` (libnftables-json(5)); only the parts read here are typed. */
type Statement = Record<string, unknown>;
type Verdict = { goto?: { target: string }; jump?: { target: string }; drop?: null; accept?: null };
interface Listing { nftables: Record<string, unknown>[] }

/** The frontends in `ip ferry` and `ip6 ferry`; none when ferry has no table. */
export async function readNftFrontends(runner: Runner): Promise<ServiceFrontend[]> {
  const frontends: ServiceFrontend[] = [];
  for (const family of ['ip', 'ip6'] as const) {
    const result = await runner.run('nft', ['-j', 'list', 'table', family, 'ferry']);
    if (result.exitCode !== 0) {
      if (/No such file or directory/.test(result.stderr)) continue;
      throw new DataplaneError(`nft -j list table ${family} ferry`, result, 'reading the ferry nftables table failed');
    }
    frontends.push(...nftTableFrontends(JSON.parse(result.stdout) as Listing, family));
  }
  return sortFrontends(frontends);
}

/** The frontends of one table as `nft -j list table` prints it. */
export function nftTableFrontends(listing: Listing, family: 'ip' | 'ip6'): ServiceFrontend[] {
  const chains = new Map<string, Statement[][]>();
  const collections = new Map<string, { elem?: unknown[]; timeout?: number }>();
  for (const entry of listing.nftables) {
    const rule = entry.rule as { chain: string; expr: Statement[] } | undefined;
    if (rule) chains.set(rule.chain, [...(chains.get(rule.chain) ?? []), rule.expr]);
    const collection = (entry.map ?? entry.set) as { name: string; elem?: unknown[]; timeout?: number } | undefined;
    if (collection) collections.set(collection.name, collection);
  }
  const elements = (name: string) => (collections.get(name)?.elem ?? []).map((element) => element as [unknown, Verdict]);
  const clusterIPs = new Set((collections.get('cluster-ips')?.elem ?? []).map(String));
  const reader = chainReader(chains, collections);
  const frontends = new Map<string, ServiceFrontend>();
  const put = (frontend: ServiceFrontend) => frontends.set(`${frontend.address}|${frontend.port}|${frontend.protocol}|${frontend.kind}`, frontend);

  // Addresses first, then the verdicts that stand in for them (a verdict keeps a Local policy's
  // outside traffic off the external chain that serves the node's own sources).
  for (const [key, verdict] of elements('service-ips')) {
    const [address, protocol, port] = addressKey(key);
    const kind = clusterIPs.has(address) ? 'ClusterIP' : 'External';
    put({ address, port, protocol, kind, ...reader.target(verdict.goto?.target ?? '', kind !== 'ClusterIP') });
  }
  for (const [key, verdict] of elements('service-nodeports')) {
    const [protocol, port] = portKey(key);
    put({ address: anyAddress(family === 'ip6'), port, protocol, kind: 'NodePort', ...reader.target(verdict.goto?.target ?? '', true) });
  }
  // A verdict's element names no chain: the Service is known where the address also leads to one.
  const verdictOver = (frontend: Omit<ServiceFrontend, 'service' | 'verdict' | 'affinitySeconds' | 'endpoints' | 'sourceRanges'>, verdict: Verdict) => put({
    ...frontend, ...bare(verdict, frontends.get(`${frontend.address}|${frontend.port}|${frontend.protocol}|${frontend.kind}`)?.service ?? null),
  });
  for (const [key, verdict] of elements('no-endpoint-services')) {
    const [address, protocol, port] = addressKey(key);
    verdictOver({ address, port, protocol, kind: clusterIPs.has(address) ? 'ClusterIP' : 'External' }, verdict);
  }
  for (const [key, verdict] of elements('no-endpoint-nodeports')) {
    const [protocol, port] = portKey(key);
    verdictOver({ address: anyAddress(family === 'ip6'), port, protocol, kind: 'NodePort' }, verdict);
  }
  for (const [key, verdict] of elements('firewall-ips')) {
    const [address, protocol, port] = addressKey(key);
    const frontend = frontends.get(`${address}|${port}|${protocol}|External`);
    if (frontend) frontend.sourceRanges = reader.allowedSources(verdict.goto?.target ?? '');
  }
  return [...frontends.values()];
}

/** A key `address . protocol . port` of the address maps. */
function addressKey(key: unknown): [string, L4Protocol, number] {
  return (key as { concat: [string, L4Protocol, number] }).concat;
}

/** A key `protocol . port` of the node-port maps. */
function portKey(key: unknown): [L4Protocol, number] {
  return (key as { concat: [L4Protocol, number] }).concat;
}

/** A verdict map's value without a chain: reject (through reject-chain) or drop. */
function bare(verdict: Verdict, service: string | null): Pick<ServiceFrontend, 'service' | 'verdict' | 'affinitySeconds' | 'sourceRanges' | 'endpoints'> {
  return { service, verdict: verdict.goto?.target === 'reject-chain' ? 'reject' : 'drop', affinitySeconds: 0, sourceRanges: [], endpoints: [] };
}

/** Follows chains: a group chain's choices, an external chain's way for outside sources, a firewall chain's ranges. */
function chainReader(chains: Map<string, Statement[][]>, collections: Map<string, { timeout?: number }>) {
  const rulesOf = (name: string) => chains.get(name) ?? [];
  const target = (rule: Statement[]) => rule.map((statement) => (statement.goto ?? statement.jump) as { target: string } | undefined).find(Boolean)?.target;
  const isMatch = (statement: Statement) => 'match' in statement;
  const matchOf = (statement: Statement) => statement.match as { op: string; left: Record<string, { mod?: number; key?: string; field?: string }>; right: unknown };

  /** Where a connection from outside goes from an external chain: its rule without a condition (a Local policy's node-source rules have one). */
  const outsideGroup = (name: string): string | undefined => rulesOf(name).filter((rule) => !rule.some(isMatch)).map(target).find((chain) => chain && chain !== 'mark-for-masquerade');

  const endpointOf = (rule: Statement[]): { ip: string; port: number } | undefined => {
    const dnat = rule.find((statement) => 'dnat' in statement)?.dnat as { addr: string; port: number } | undefined;
    if (dnat) return { ip: dnat.addr, port: dnat.port };
    const chain = target(rule);
    return chain?.startsWith('sep-') ? rulesOf(chain).map(endpointOf).find(Boolean) : undefined;
  };

  const group = (name: string) => {
    const choices: { endpoint: { ip: string; port: number }; chance: number }[] = [];
    let affinitySeconds = 0;
    for (const rule of rulesOf(name)) {
      const matches = rule.filter(isMatch).map(matchOf);
      const affinity = matches.find((match) => typeof match.right === 'string' && match.right.startsWith('@'));
      if (affinity) {
        affinitySeconds ||= collections.get((affinity.right as string).slice(1))?.timeout ?? 0;
        continue;
      }
      const endpoint = endpointOf(rule);
      if (!endpoint) continue;
      const draw = matches.find((match) => 'numgen' in match.left);
      choices.push({ endpoint, chance: draw ? Number(draw.right) / draw.left.numgen!.mod! : 1 });
    }
    const probabilities = sequentialProbabilities(choices.map((choice) => choice.chance));
    return { affinitySeconds, endpoints: choices.map((choice, index) => ({ ...choice.endpoint, probability: probabilities[index]! })) };
  };

  return {
    /** What a frontend's verdict-map chain leads to; `external`: the chain is an external one, followed for outside sources. */
    target(chain: string, external: boolean): Pick<ServiceFrontend, 'service' | 'verdict' | 'affinitySeconds' | 'sourceRanges' | 'endpoints'> {
      const groupChain = external && chain.startsWith('ext-') ? outsideGroup(chain) : chain;
      const { affinitySeconds, endpoints } = groupChain ? group(groupChain) : { affinitySeconds: 0, endpoints: [] };
      return { service: serviceOfChain(chain), verdict: 'forward', affinitySeconds, sourceRanges: [], endpoints };
    },
    /** The sources a firewall chain returns for (lets through); the rest it drops. */
    allowedSources(chain: string): string[] {
      return rulesOf(chain).flatMap((rule) => {
        if (!rule.some((statement) => 'return' in statement)) return [];
        const right = rule.filter(isMatch).map(matchOf)[0]?.right as string | { prefix: { addr: string; len: number } } | undefined;
        if (right === undefined) return [];
        return [cidrOf(typeof right === 'string' ? right : `${right.prefix.addr}/${right.prefix.len}`)];
      }).sort(compareText);
    },
  };
}

/** `svc-HASH-ns/name/port/protocol` (and svl-, ext-) names its Service port `ns/name:port/protocol`. */
function serviceOfChain(chain: string): string | null {
  const match = /^(?:svc|svl|ext)-[0-9A-F]{16}-([^/]+)\/([^/]+)\/([^/]+)\/([a-z]+)$/.exec(chain);
  return match ? `${match[1]}/${match[2]}:${match[3]}/${match[4]}` : null;
}
