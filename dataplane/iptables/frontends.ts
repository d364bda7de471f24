// ferry's iptables chains read back as Service frontends (`ferry services`): FERRY-SERVICES and
// FERRY-NODEPORTS say which address, port and protocol leads to which chain (their comments name the
// Service port and the kind), the group chains' statistic matches give each endpoint's chance, and
// FERRY-NO-ENDPOINTS and the firewall chains give the verdicts and source ranges.
import { anyAddress, cidrOf, sequentialProbabilities, sortFrontends, type FrontendKind, type ServiceFrontend } from '../../rules/frontends.js';
import type { L4Protocol } from '../../rules/node-rules.js';
import { compareText } from '../../rules/port-changes.js';
import type { Runner } from '../runner.js';
import { saveIptables, type Family } from './shell.js';

/** One `-A CHAIN ...` line of iptables-save, its options by name (`!` kept as a prefix of the value). */
interface SavedRule {
  table: string;
  chain: string;
  options: Map<string, string>;
}

/** The frontends of both families; none where ferry has no chains. */
export async function readIptablesFrontends(runner: Runner): Promise<ServiceFrontend[]> {
  const families = await Promise.all((['IPv4', 'IPv6'] as const).map(async (family) => iptablesFrontends(await saveIptables(runner, family), family)));
  return sortFrontends(families.flat());
}

/** The frontends in one family's iptables-save output. */
export function iptablesFrontends(saved: string, family: Family): ServiceFrontend[] {
  const rules = parseSave(saved);
  const chains = new Map<string, SavedRule[]>();
  for (const rule of rules) chains.set(rule.chain, [...(chains.get(rule.chain) ?? []), rule]);
  const rulesOf = (chain: string) => chains.get(chain) ?? [];
  const opt = (rule: SavedRule, name: string) => rule.options.get(name);
  const host = (rule: SavedRule) => (opt(rule, '-d') ?? '').replace(/\/(32|128)$/, '');
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
  const group = (chain: string) => {
    let affinitySeconds = 0;
    const choices: { endpoint: { ip: string; port: number }; chance: number }[] = [];
    for (const rule of rulesOf(chain)) {
      if (opt(rule, '--rcheck') !== undefined) {
        affinitySeconds ||= Number(opt(rule, '--seconds') ?? 0);
        continue;
      }
      const endpoint = opt(rule, '-j')?.startsWith('FERRY-SEP-') ? endpointOf(opt(rule, '-j')!) : undefined;
      if (endpoint) choices.push({ endpoint, chance: Number(opt(rule, '--probability') ?? 1) });
    }
    const probabilities = sequentialProbabilities(choices.map((choice) => choice.chance));
    return { affinitySeconds, endpoints: choices.map((choice, index) => ({ ...choice.endpoint, probability: probabilities[index]! })) };
  };
  /** An external chain's way for traffic from outside: its rule without a source condition. */
  const outsideGroup = (chain: string) => rulesOf(chain)
    .filter((rule) => opt(rule, '-s') === undefined && opt(rule, '--src-type') === undefined)
    .map((rule) => opt(rule, '-j')).find((target) => target && target !== 'FERRY-MARK-MASQ');
  const forward = (target: string, external: boolean) => {
    const chain = external && target.startsWith('FERRY-EXT-') ? outsideGroup(target) : target;
    return { verdict: 'forward' as const, sourceRanges: [], ...(chain ? group(chain) : { affinitySeconds: 0, endpoints: [] }) };
  };
  const portOf = (rule: SavedRule) => ({ port: Number(opt(rule, '--dport')), protocol: opt(rule, '-p') as L4Protocol });
  const serviceOf = (rule: SavedRule, suffix: RegExp) => (opt(rule, '--comment') ?? '').replace(suffix, '') || null;

  const frontends = new Map<string, ServiceFrontend>();
  const put = (frontend: ServiceFrontend) => frontends.set(`${frontend.address}|${frontend.port}|${frontend.protocol}|${frontend.kind}`, frontend);
  for (const rule of rulesOf('FERRY-SERVICES')) {
    const target = opt(rule, '-j')!;
    if (target === 'FERRY-NODEPORTS') continue;
    const kind: FrontendKind = (opt(rule, '--comment') ?? '').endsWith(' cluster IP') ? 'ClusterIP' : 'External';
    put({ address: host(rule), ...portOf(rule), kind, service: serviceOf(rule, / (cluster|external) IP$/), ...forward(target, kind !== 'ClusterIP') });
  }
  for (const rule of rulesOf('FERRY-NODEPORTS')) {
    put({ address: anyAddress(family === 'IPv6'), ...portOf(rule), kind: 'NodePort', service: serviceOf(rule, / node port$/), ...forward(opt(rule, '-j')!, true) });
  }
  for (const rule of rulesOf('FERRY-NO-ENDPOINTS')) {
    const nodePort = nodePortMatches.has(nodePortMatch(rule));
    const address = nodePort ? anyAddress(family === 'IPv6') : host(rule);
    const kind: FrontendKind = nodePort ? 'NodePort' : clusterIPs.has(address) ? 'ClusterIP' : 'External';
    put({
      address, ...portOf(rule), kind, service: serviceOf(rule, / has no (local )?endpoints$/),
      verdict: opt(rule, '-j') === 'REJECT' ? 'reject' : 'drop', affinitySeconds: 0, sourceRanges: [], endpoints: [],
    });
  }
  for (const rule of rulesOf('FERRY-FIREWALL')) {
    const frontend = frontends.get(`${host(rule)}|${portOf(rule).port}|${portOf(rule).protocol}|External`);
    const allowed = rulesOf(opt(rule, '-j')!).filter((range) => opt(range, '-j') === 'RETURN' && opt(range, '-s')).map((range) => cidrOf(opt(range, '-s')!));
    if (frontend) frontend.sourceRanges = allowed.sort(compareText);
  }
  return [...frontends.values()];
}

/** The `-A` lines of ferry's chains in iptables-save output, with their table. */
function parseSave(saved: string): SavedRule[] {
  const rules: SavedRule[] = [];
  let table = '';
  for (const line of saved.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    if (!line.startsWith('-A ')) continue;
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
    rules.push({ table, chain: words[1]!, options });
  }
  return rules.filter((rule) => rule.chain.startsWith('FERRY-'));
}

/** Words of a saved rule; a quoted comment is one word (iptables-save escapes `"` and `\` inside it). */
function splitWords(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((match) => (match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : match[2]!));
}
