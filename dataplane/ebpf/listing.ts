// A NodePlan as people read it: `ferry render --backend ebpf` prints it, and `ferry diff` compares the
// kernel's maps read back with it. Sorted, and without group ids (the kernel's and a fresh plan's
// differ): each frontend lists its endpoints with their weights. Pure.
import type { WeightedEndpoint } from './groups.js';
import type { FrontendKey } from './layout.js';
import type { NodePlan } from './node-plan.js';

/** Where the programs are (or are to be) attached, as listed. */
export interface Attachments {
  cgroup: string;
  hooks: string[];
  devices: string[];
}

const hostPort = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
const frontendText = (key: FrontendKey) => `${hostPort(key.ip, key.port)}/${key.protocol}`;
const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The listing; `addresses` says whether the node's addresses are known (a render does not read the
 * interfaces: node ports at them are left out and said to be).
 */
export function listNodePlan(plan: NodePlan, options: { node: string; attachments: Attachments | string; addressesKnown: boolean; brokenGroups?: number[] }): string {
  const { groups } = plan.sockets;
  const broken = new Set(options.brokenGroups ?? []);
  // Each group's text once, though several frontends (socket and packet) lead to it; also marks it used.
  const texts = new Map<number, string>();
  const endpoints = (id: number): string => {
    let text = texts.get(id);
    if (text !== undefined) return text;
    const group = groups.get(id);
    if (!group) text = `group ${id} (missing)`;
    else if (broken.has(id)) text = `group ${id} (a slot is missing)`;
    else text = group.length ? group.map((endpoint: WeightedEndpoint) => `${hostPort(endpoint.ip, endpoint.port)} w${endpoint.weight}`).join(', ') : 'no endpoints';
    texts.set(id, text);
    return text;
  };
  const lines: string[] = [`# ferry eBPF maps for node ${options.node}, sorted (group ids left out)`];

  lines.push('attached');
  if (typeof options.attachments === 'string') lines.push(`  ${options.attachments}`);
  else {
    const { cgroup, hooks, devices } = options.attachments;
    lines.push(`  cgroup ${cgroup}: ${hooks.length ? hooks.join(' ') : 'nothing'}`);
    lines.push(`  tc ingress: ${devices.length ? [...devices].sort(byText).join(' ') : 'nothing'}`);
  }

  lines.push('socket frontends (connect and sendmsg of the processes in the cgroup)');
  const sockets = [...plan.sockets.frontends.values()].map(([key, value]) => {
    const affinity = value.affinitySeconds ? ` affinity ${value.affinitySeconds}s` : '';
    return `  ${frontendText(key)} ${value.verdict}${affinity}${value.verdict === 'serve' ? ` -> ${endpoints(value.group)}` : ''}`;
  });
  for (const line of sockets.sort(byText)) lines.push(line);
  if (!options.addressesKnown) lines.push('  (and each node port at the node\'s addresses, read when applied)');

  lines.push('packet frontends (tc ingress: traffic from outside)');
  const packets = [...plan.packets.frontends.values()].map(([key, value]) => {
    const parts = [`  ${frontendText(key)} ${value.verdict}`];
    if (value.masquerade !== 'never') parts.push(`masquerade ${value.masquerade}`);
    if (value.ranged) parts.push('ranged');
    if (value.affinitySeconds) parts.push(`affinity ${value.affinitySeconds}s`);
    let text = parts.join(' ');
    if (value.verdict === 'serve') text += ` -> ${endpoints(value.group)}`;
    if (value.localSourceGroup) text += `; local sources -> ${endpoints(value.localSourceGroup)}`;
    return text;
  });
  for (const line of packets.sort(byText)) lines.push(line);

  const ranges = [...plan.packets.sourceRanges.values()].map((range) => `  ${frontendText(range.frontend)} from ${range.cidr}`);
  if (ranges.length) lines.push('source ranges', ...ranges.sort(byText));
  const addresses = options.addressesKnown ? [...plan.packets.nodeAddresses].sort(byText).join(' ') || 'none' : 'the node\'s, read when applied';
  lines.push(`node addresses (node ports): ${addresses}`);
  const sources = options.addressesKnown ? [...plan.packets.masqueradeSources].sort(([a], [b]) => byText(a, b)).map(([family, ip]) => `${family} ${ip}`).join(', ') || 'none' : 'the node\'s first address of each family, read when applied';
  lines.push(`masquerade sources: ${sources}`);
  lines.push(`local sources: ${[...plan.packets.localSources].sort(byText).join(' ') || 'none'}`);
  const unused = [...groups.keys()].filter((id) => !texts.has(id)).length;
  if (unused) lines.push(`groups no frontend uses: ${unused}`);
  return `${lines.join('\n')}\n`;
}
