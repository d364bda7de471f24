// ferry's nftables tables read back as Service frontends (`ferry services`, `ferry trace --live`): the
// maps say which address, port and protocol leads where; the chains they lead to say which endpoints a
// connection can reach with which chance (`numgen random mod N < k`, tried one after another), who is
// masqueraded, and where a Local policy sends the node's own and the pods' connections.
import { anyAddress, cidrOf, sequentialProbabilities, sortFrontends, type FrontendEndpoint, type FrontendFamily, type FrontendState, type ServiceFrontend } from '../../rules/frontends.js';
import type { L4Protocol, NodePortAddresses } from '../../rules/node-rules.js';
import { compareText } from '../../rules/port-changes.js';
import { DataplaneError, type Runner } from '../runner.js';

/** One statement of a rule in `nft -j` (libnftables-json(5)); only the parts read here are typed. */
type Statement = Record<string, unknown>;
type Verdict = { goto?: { target: string }; jump?: { target: string }; drop?: null };
type Match = { op: string; left: Record<string, { mod?: number; flags?: string[]; field?: string }>; right: unknown };
interface Listing { nftables: Record<string, unknown>[] }

/** The frontends in `ip ferry` and `ip6 ferry`; none when ferry has no table. */
export async function readNftFrontends(runner: Runner): Promise<FrontendState> {
  const tables: FrontendState[] = [];
  for (const family of ['ip', 'ip6'] as const) {
    const result = await runner.run('nft', ['-j', 'list', 'table', family, 'ferry']);
    if (result.exitCode !== 0) {
      if (/No such file or directory/.test(result.stderr)) continue;
      throw new DataplaneError(`nft -j list table ${family} ferry`, result, 'reading the ferry nftables table failed');
    }
    tables.push(nftTableFrontends(JSON.parse(result.stdout) as Listing, family));
  }
  return { families: tables.flatMap((table) => table.families), frontends: sortFrontends(tables.flatMap((table) => table.frontends)) };
}

/** The frontends of one table as `nft -j list table` prints it. */
export function nftTableFrontends(listing: Listing, family: 'ip' | 'ip6'): FrontendState {
  const chains = new Map<string, Statement[][]>();
  const collections = new Map<string, { elem?: unknown[]; timeout?: number }>();
  for (const entry of listing.nftables) {
    const rule = entry.rule as { chain: string; expr: Statement[] } | undefined;
    if (rule) {
      const rules = chains.get(rule.chain);
      if (rules) rules.push(rule.expr);
      else chains.set(rule.chain, [rule.expr]);
    }
    const collection = (entry.map ?? entry.set) as { name: string; elem?: unknown[]; timeout?: number } | undefined;
    if (collection) collections.set(collection.name, collection);
  }
  const elements = (name: string) => (collections.get(name)?.elem ?? []).map((element) => element as [unknown, Verdict]);
  const clusterIPs = (collections.get('cluster-ips')?.elem ?? []).map(String);
  const reader = chainReader(chains, collections);
  const frontends = new Map<string, ServiceFrontend>();
  const keyOf = (frontend: Pick<ServiceFrontend, 'address' | 'port' | 'protocol' | 'kind'>) => `${frontend.address}|${frontend.port}|${frontend.protocol}|${frontend.kind}`;
  const put = (frontend: ServiceFrontend) => frontends.set(keyOf(frontend), frontend);
  const kindAt = (address: string) => (clusterIPs.includes(address) ? 'ClusterIP' as const : 'External' as const);
  const any = anyAddress(family === 'ip6');

  // Addresses first, then the verdicts that stand in for them (a verdict keeps a Local policy's
  // outside traffic off the external chain that serves the node's own sources).
  for (const [key, verdict] of elements('service-ips')) {
    const [address, protocol, port] = addressKey(key);
    put({ address, port, protocol, kind: kindAt(address), ...reader.target(verdict.goto?.target ?? '') });
  }
  for (const [key, verdict] of elements('service-nodeports')) {
    const [protocol, port] = portKey(key);
    put({ address: any, port, protocol, kind: 'NodePort', ...reader.target(verdict.goto?.target ?? '') });
  }
  // A verdict's element names no chain: the Service is known where the address also leads to one, whose
  // chain still serves the inside sources of a Local policy (the verdict sees the address after DNAT).
  const verdictOver = (frontend: Pick<ServiceFrontend, 'address' | 'port' | 'protocol' | 'kind'>, verdict: Verdict) => {
    const chained = frontends.get(keyOf(frontend));
    put({ ...frontend, ...bare(verdict, chained?.service ?? null), inside: chained?.inside ?? null });
  };
  for (const [key, verdict] of elements('no-endpoint-services')) {
    const [address, protocol, port] = addressKey(key);
    verdictOver({ address, port, protocol, kind: kindAt(address) }, verdict);
  }
  for (const [key, verdict] of elements('no-endpoint-nodeports')) {
    const [protocol, port] = portKey(key);
    verdictOver({ address: any, port, protocol, kind: 'NodePort' }, verdict);
  }
  for (const [key, verdict] of elements('firewall-ips')) {
    const [address, protocol, port] = addressKey(key);
    const frontend = frontends.get(keyOf({ address, port, protocol, kind: 'External' }));
    if (frontend) frontend.sourceRanges = reader.allowedSources(verdict.goto?.target ?? '');
  }
  const facts: FrontendFamily = {
    family: family === 'ip6' ? 'IPv6' : 'IPv4',
    ...(reader.localCIDR() ? { localCIDR: reader.localCIDR() } : {}),
    clusterIPs,
    serviceCIDRs: reader.serviceCIDRs(),
    nodePortAddresses: reader.nodePortAddresses((collections.get('nodeport-ips')?.elem ?? []).map(String)),
  };
  return { families: [facts], frontends: [...frontends.values()] };
}

/** A key `address . protocol . port` of the address maps. */
function addressKey(key: unknown): [string, L4Protocol, number] {
  return (key as { concat: [string, L4Protocol, number] }).concat;
}

/** A key `protocol . port` of the node-port maps. */
function portKey(key: unknown): [L4Protocol, number] {
  return (key as { concat: [L4Protocol, number] }).concat;
}

type FrontendWay = Omit<ServiceFrontend, 'address' | 'port' | 'protocol' | 'kind'>;

/** A verdict map's value without a chain: reject (through reject-chain) or drop. */
function bare(verdict: Verdict, service: string | null): FrontendWay {
  return { service, verdict: verdict.goto?.target === 'reject-chain' ? 'reject' : 'drop', affinitySeconds: 0, sourceRanges: [], endpoints: [], masquerade: 'none', inside: null };
}

/** An address or prefix as `nft -j` prints a match's right side, as a CIDR. */
function prefixOf(right: unknown): string | undefined {
  if (typeof right === 'string' && !right.startsWith('@')) return cidrOf(right);
  const prefix = (right as { prefix?: { addr: string; len: number } } | undefined)?.prefix;
  return prefix ? cidrOf(`${prefix.addr}/${prefix.len}`) : undefined;
}

/** Follows chains: group chains' choices and masquerade, external chains' ways, firewall chains' ranges. */
function chainReader(chains: Map<string, Statement[][]>, collections: Map<string, { timeout?: number }>) {
  const rulesOf = (name: string) => chains.get(name) ?? [];
  const targetOf = (rule: Statement[]) => rule.map((statement) => (statement.goto ?? statement.jump) as { target: string } | undefined).find(Boolean)?.target;
  const matchesOf = (rule: Statement[]) => rule.filter((statement) => 'match' in statement).map((statement) => statement.match as Match);
  const saddrMatch = (rule: Statement[]) => matchesOf(rule).find((match) => match.left.payload?.field === 'saddr');
  const masquerades = (rule: Statement[]) => targetOf(rule) === 'mark-for-masquerade';
  // The local CIDR as the rules test it: masquerade unless from it, or a Local policy's pod shortcut.
  const localCIDRs = new Set<string>();

  const endpointOf = (rule: Statement[]): { ip: string; port: number } | undefined => {
    const dnat = rule.find((statement) => 'dnat' in statement)?.dnat as { addr: string; port: number } | undefined;
    if (dnat) return { ip: dnat.addr, port: dnat.port };
    const chain = targetOf(rule);
    return chain?.startsWith('sep-') ? rulesOf(chain).map(endpointOf).find(Boolean) : undefined;
  };

  const group = (name: string) => {
    const choices: { endpoint: { ip: string; port: number }; chance: number }[] = [];
    let affinitySeconds = 0;
    let masquerade: ServiceFrontend['masquerade'] = 'none';
    for (const rule of rulesOf(name)) {
      const matches = matchesOf(rule);
      if (masquerades(rule)) {
        const offCluster = saddrMatch(rule);
        if (offCluster?.op === '!=') localCIDRs.add(prefixOf(offCluster.right)!);
        masquerade = offCluster ? 'off-cluster' : 'all';
        continue;
      }
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
    const endpoints: FrontendEndpoint[] = choices.map((choice, index) => ({ ...choice.endpoint, probability: probabilities[index]! }));
    return { affinitySeconds, masquerade, endpoints };
  };

  return {
    /**
     * Where a frontend's chain leads. An external chain with conditions is a Local policy's: outside
     * traffic takes its rule without one, the pods' and the node's the conditional goto; without
     * conditions (Cluster) everyone is masqueraded and sent to every endpoint.
     */
    target(chain: string): FrontendWay {
      const service = serviceOfChain(chain);
      if (!chain.startsWith('ext-')) return { service, verdict: 'forward', sourceRanges: [], inside: null, ...group(chain) };
      const rules = rulesOf(chain);
      const conditional = rules.filter((rule) => matchesOf(rule).length > 0);
      const outside = rules.filter((rule) => matchesOf(rule).length === 0).map(targetOf).find((target) => target && target !== 'mark-for-masquerade');
      const { affinitySeconds, endpoints } = outside ? group(outside) : { affinitySeconds: 0, endpoints: [] };
      if (conditional.length === 0) return { service, verdict: 'forward', sourceRanges: [], affinitySeconds, endpoints, masquerade: 'all', inside: null };
      for (const rule of conditional) if (saddrMatch(rule)?.op === '==') localCIDRs.add(prefixOf(saddrMatch(rule)!.right)!);
      const insideChain = conditional.map(targetOf).find((target) => target && target !== 'mark-for-masquerade');
      return { service, verdict: 'forward', sourceRanges: [], affinitySeconds, endpoints, masquerade: 'none', inside: insideChain ? group(insideChain).endpoints : [] };
    },
    /** The sources a firewall chain returns for (lets through); the rest it drops. */
    allowedSources(chain: string): string[] {
      return rulesOf(chain).filter((rule) => rule.some((statement) => 'return' in statement))
        .flatMap((rule) => { const source = prefixOf(matchesOf(rule)[0]?.right); return source ? [source] : []; }).sort(compareText);
    },
    /** Read after the frontends: the local CIDR their chains test. */
    localCIDR: () => [...localCIDRs][0],
    /** cluster-ips-check drops what is in a service CIDR and held by no Service. */
    serviceCIDRs(): string[] {
      const drop = rulesOf('cluster-ips-check').find((rule) => rule.some((statement) => 'drop' in statement));
      const right = drop ? matchesOf(drop)[0]?.right as { set?: unknown[] } | undefined : undefined;
      return (right?.set ?? (right ? [right] : [])).flatMap((item) => prefixOf(item) ?? []);
    },
    /** How the services chain picks node-port traffic: @nodeport-ips, local addresses in CIDRs, or every local address. */
    nodePortAddresses(nodePortIPs: string[]): NodePortAddresses {
      const rule = rulesOf('services').find((candidate) => candidate.some((statement) => JSON.stringify(statement).includes('@service-nodeports')));
      if (!rule) return { kind: 'addresses', addresses: [] };
      const daddr = matchesOf(rule).find((match) => match.left.payload?.field === 'daddr');
      if (daddr?.right === '@nodeport-ips') return { kind: 'addresses', addresses: nodePortIPs };
      if (daddr && daddr.op === '==') {
        const right = daddr.right as { set?: unknown[] };
        return { kind: 'cidrs', cidrs: (right.set ?? [right]).flatMap((item) => prefixOf(item) ?? []) };
      }
      return { kind: 'all' };
    },
  };
}

/** `svc-HASH-ns/name/port/protocol` (and svl-, ext-) names its Service port `ns/name:port/protocol`. */
function serviceOfChain(chain: string): string | null {
  const match = /^(?:svc|svl|ext)-[0-9A-F]{16}-([^/]+)\/([^/]+)\/([^/]+)\/([a-z]+)$/.exec(chain);
  return match ? `${match[1]}/${match[2]}:${match[3]}/${match[4]}` : null;
}
