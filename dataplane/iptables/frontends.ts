// ferry's iptables chains read back as Service frontends (`ferry services`): FERRY-SERVICES and
// FERRY-NODEPORTS say which address, port and protocol leads to which chain (their comments name the
// Service port and the kind), the group chains' statistic matches give each endpoint's chance, and
// FERRY-NO-ENDPOINTS and the firewall chains give the verdicts and source ranges.
import { anyAddress, cidrOf, sequentialProbabilities, sortFrontends, type FrontendEndpoint, type FrontendKind, type FrontendState, type ServiceFrontend } from '../../rules/frontends.js';
import type { L4Protocol, NodePortAddresses } from '../../rules/node-rules.js';
import { compareText } from '../../rules/port-changes.js';
import type { Runner } from '../runner.js';
import { parseFerryTables, saveIptables, type Family } from './shell.js';

/** One `-A CHAIN ...` line of iptables-save, its options by name (`!` kept as a prefix of the value). */
interface SavedRule {
  options: Map<string, string>;
}

/** The frontends of both families; none where ferry has no chains. */
export async function readIptablesFrontends(runner: Runner): Promise<FrontendState> {
  const families = await Promise.all((['IPv4', 'IPv6'] as const).map(async (family) => iptablesFrontends(await saveIptables(runner, family), family)));
  // A family where ferry has no chains has no facts either.
  const held = families.filter((state) => state.frontends.length > 0 || state.families[0]!.clusterIPs.length > 0);
  return { families: held.flatMap((state) => state.families), frontends: sortFrontends(held.flatMap((state) => state.frontends)) };
}

/** The frontends in one family's iptables-save output. */
export function iptablesFrontends(saved: string, family: Family): FrontendState {
  // ferry's chains of every table (their names are unique across tables).
  const chains = new Map<string, SavedRule[]>();
  for (const table of parseFerryTables(saved).values()) for (const [chain, lines] of table.rules) chains.set(chain, lines.map(savedRule));
  const rulesOf = (chain: string) => chains.get(chain) ?? [];
  const opt = (rule: SavedRule, name: string) => rule.options.get(name);
  const host = (rule: SavedRule) => hostOf(opt(rule, '-d') ?? '');
  const clusterIPs = new Set(rulesOf('FERRY-CLUSTER-IPS').filter((rule) => opt(rule, '-j') === 'REJECT').map(host));
  // How FERRY-SERVICES picks node-port traffic (node addresses, or local addresses in CIDRs): the same
  // match on a FERRY-NO-ENDPOINTS rule makes it a node port's verdict.
  const nodePortMatch = (rule: SavedRule) => `${opt(rule, '-d') ?? ''}|${opt(rule, '--dst-type') ?? ''}`;
  const nodePortMatches = new Set(rulesOf('FERRY-SERVICES').filter((rule) => opt(rule, '-j') === 'FERRY-NODEPORTS').map(nodePortMatch));

  const endpointOf = (chain: string) => {
    const destination = rulesOf(chain).map((rule) => opt(rule, '--to-destination')).find(Boolean);
    const match = destination ? /^\[?([^\]]+?)\]?:(\d+)$/.exec(destination) : null;
    return match ? { ip: match[1]!, port: Number(match[2]) } : undefined;
  };
  // The local CIDR as the rules test it: masquerade unless from it, or a Local policy's pod shortcut.
  const localCIDRs = new Set<string>();
  const group = (chain: string) => {
    let affinitySeconds = 0;
    let masquerade: ServiceFrontend['masquerade'] = 'none';
    const choices: { endpoint: { ip: string; port: number }; chance: number }[] = [];
    for (const rule of rulesOf(chain)) {
      if (opt(rule, '-j') === 'FERRY-MARK-MASQ') {
        const source = opt(rule, '-s');
        if (source?.startsWith('!')) localCIDRs.add(cidrOf(source.slice(1)));
        masquerade = source ? 'off-cluster' : 'all';
        continue;
      }
      if (opt(rule, '--rcheck') !== undefined) {
        affinitySeconds ||= Number(opt(rule, '--seconds') ?? 0);
        continue;
      }
      const endpoint = opt(rule, '-j')?.startsWith('FERRY-SEP-') ? endpointOf(opt(rule, '-j')!) : undefined;
      if (endpoint) choices.push({ endpoint, chance: Number(opt(rule, '--probability') ?? 1) });
    }
    const probabilities = sequentialProbabilities(choices.map((choice) => choice.chance));
    const endpoints: FrontendEndpoint[] = choices.map((choice, index) => ({ ...choice.endpoint, probability: probabilities[index]! }));
    return { affinitySeconds, masquerade, endpoints };
  };
  /**
   * Where a frontend's chain leads. An external chain with source conditions is a Local policy's:
   * outside traffic takes its rule without one, the pods' and the node's the conditional jump; without
   * conditions (Cluster) everyone is masqueraded and sent to every endpoint.
   */
  const forward = (target: string) => {
    if (!target.startsWith('FERRY-EXT-')) return { verdict: 'forward' as const, sourceRanges: [], inside: null, ...group(target) };
    const conditional = (rule: SavedRule) => opt(rule, '-s') !== undefined || opt(rule, '--src-type') !== undefined;
    const leadsOn = (rule: SavedRule) => opt(rule, '-j') !== 'FERRY-MARK-MASQ';
    const rules = rulesOf(target);
    const outside = rules.find((rule) => !conditional(rule) && leadsOn(rule));
    const { affinitySeconds, endpoints } = outside ? group(opt(outside, '-j')!) : { affinitySeconds: 0, endpoints: [] };
    const inside = rules.filter(conditional);
    if (inside.length === 0) return { verdict: 'forward' as const, sourceRanges: [], affinitySeconds, endpoints, masquerade: 'all' as const, inside: null };
    for (const rule of inside) if (opt(rule, '-s') && !opt(rule, '-s')!.startsWith('!')) localCIDRs.add(cidrOf(opt(rule, '-s')!));
    const insideChain = inside.find(leadsOn);
    return { verdict: 'forward' as const, sourceRanges: [], affinitySeconds, endpoints, masquerade: 'none' as const, inside: insideChain ? group(opt(insideChain, '-j')!).endpoints : [] };
  };
  const portOf = (rule: SavedRule) => ({ port: Number(opt(rule, '--dport')), protocol: opt(rule, '-p') as L4Protocol });
  const serviceOf = (rule: SavedRule, suffix: RegExp) => (opt(rule, '--comment') ?? '').replace(suffix, '') || null;

  const frontends = new Map<string, ServiceFrontend>();
  const put = (frontend: ServiceFrontend) => frontends.set(`${frontend.address}|${frontend.port}|${frontend.protocol}|${frontend.kind}`, frontend);
  for (const rule of rulesOf('FERRY-SERVICES')) {
    const target = opt(rule, '-j')!;
    if (target === 'FERRY-NODEPORTS') continue;
    const kind: FrontendKind = (opt(rule, '--comment') ?? '').endsWith(' cluster IP') ? 'ClusterIP' : 'External';
    put({ address: host(rule), ...portOf(rule), kind, service: serviceOf(rule, / (cluster|external) IP$/), ...forward(target) });
  }
  for (const rule of rulesOf('FERRY-NODEPORTS')) {
    put({ address: anyAddress(family === 'IPv6'), ...portOf(rule), kind: 'NodePort', service: serviceOf(rule, / node port$/), ...forward(opt(rule, '-j')!) });
  }
  for (const rule of rulesOf('FERRY-NO-ENDPOINTS')) {
    const nodePort = nodePortMatches.has(nodePortMatch(rule));
    const address = nodePort ? anyAddress(family === 'IPv6') : host(rule);
    const kind: FrontendKind = nodePort ? 'NodePort' : clusterIPs.has(address) ? 'ClusterIP' : 'External';
    // The filter table's verdict sees the address after DNAT: a Local policy's chain still serves the inside sources.
    const chained = frontends.get(`${address}|${portOf(rule).port}|${portOf(rule).protocol}|${kind}`);
    put({
      address, ...portOf(rule), kind, service: serviceOf(rule, / has no (local )?endpoints$/),
      verdict: opt(rule, '-j') === 'REJECT' ? 'reject' : 'drop', affinitySeconds: 0, sourceRanges: [], endpoints: [], masquerade: 'none', inside: chained?.inside ?? null,
    });
  }
  for (const rule of rulesOf('FERRY-FIREWALL')) {
    const frontend = frontends.get(`${host(rule)}|${portOf(rule).port}|${portOf(rule).protocol}|External`);
    const allowed = rulesOf(opt(rule, '-j')!).filter((range) => opt(range, '-j') === 'RETURN' && opt(range, '-s')).map((range) => cidrOf(opt(range, '-s')!));
    if (frontend) frontend.sourceRanges = allowed.sort(compareText);
  }
  const localCIDR = [...localCIDRs][0];
  return {
    families: [{
      family, ...(localCIDR ? { localCIDR } : {}), clusterIPs: [...clusterIPs],
      serviceCIDRs: rulesOf('FERRY-CLUSTER-IPS').filter((rule) => opt(rule, '-j') === 'DROP').map((rule) => cidrOf(opt(rule, '-d')!)),
      nodePortAddresses: nodePortAddresses(rulesOf('FERRY-SERVICES').filter((rule) => opt(rule, '-j') === 'FERRY-NODEPORTS'), (rule) => opt(rule, '-d') ?? ''),
    }],
    frontends: [...frontends.values()],
  };
}

/** How FERRY-SERVICES picks node-port traffic: node addresses, local addresses in CIDRs, or every local address but loopback. */
function nodePortAddresses(rules: SavedRule[], destination: (rule: SavedRule) => string): NodePortAddresses {
  if (rules.some((rule) => destination(rule).startsWith('!'))) return { kind: 'all' };
  if (rules.some((rule) => rule.options.has('--dst-type'))) return { kind: 'cidrs', cidrs: rules.map((rule) => cidrOf(destination(rule))) };
  return { kind: 'addresses', addresses: rules.map((rule) => hostOf(destination(rule))) };
}

/** An address as iptables-save prints it, without its host mask. */
const hostOf = (destination: string) => destination.replace(/\/(32|128)$/, '');

/** A saved `-A CHAIN ...` line's options. */
function savedRule(line: string): SavedRule {
  const words = splitWords(line);
  const options = new Map<string, string>();
  for (let index = 2; index < words.length; index++) {
    const negated = words[index] === '!';
    if (negated) index += 1;
    const name = words[index]!;
    if (!name.startsWith('-')) continue;
    // A flag's value is the next word unless that is another flag (`--rcheck`, `--rsource` take none).
    const next = words[index + 1];
    const value = next !== undefined && !next.startsWith('-') && next !== '!' ? next : '';
    if (value !== '') index += 1;
    options.set(name, `${negated ? '!' : ''}${value}`);
  }
  return { options };
}

/** Words of a saved rule; a quoted comment is one word (iptables-save escapes `"` and `\` inside it). */
function splitWords(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((match) => (match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : match[2]!));
}
