// The structure check of rendered iptables-restore input: chain names within the kernel's length, every
// rule's chain and jump target declared in its table. A rendering made from the previous one is checked
// in the ports that changed (the rest was checked when the rendering it was made from was): each port's
// lines against its own chains and those the whole table declares.
import type { RenderedRules } from '../backend.js';
import { splitPortKey } from '../../rules/port-changes.js';
import { partOf } from '../port-parts.js';
import { reportProblems } from '../structure-error.js';
import { familyText, SHARED_CHAINS, type IptablesFamilyRendering, type IptablesPortPart } from './render.js';

// iptables chain names: XT_EXTENSION_MAXNAMELEN is 29 bytes including the terminating NUL.
const IPTABLES_MAX_CHAIN = 28;
const BUILTIN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/** Throws a StructureError naming every problem of one restore input. */
export function checkIptablesText(text: string): void {
  reportProblems('iptables', iptablesProblems(text));
}

/** The same for every family's input: whole, or in the changed ports. */
export function checkIptables(rendered: RenderedRules): void {
  const iptables = rendered.iptables;
  if (!iptables?.update) {
    for (const part of rendered.texts) checkIptablesText(part.text);
    return;
  }
  const problems: string[] = [];
  for (const family of iptables.families) {
    // The table with no port (and no cluster IP: a constant size): what a port may refer to besides its own chains.
    const head: IptablesFamilyRendering = { ...family, head: { ...family.head, clusterIPs: [] }, ports: [], portRules: 0 };
    const text = familyText(iptables.node, head);
    problems.push(...iptablesProblems(text));
    const declared = declaredChains(text);
    for (const { family: keyFamily, id } of [...iptables.update.changed].map(splitPortKey)) {
      const part = keyFamily === family.rules.family ? partOf(family.rules, family.ports, id) : undefined;
      if (part) problems.push(...iptablesProblems(partText(part), declared));
    }
  }
  reportProblems('iptables', problems);
}

/** A port's lines as restore input, table by table, with its own chains declared. */
function partText(part: IptablesPortPart): string {
  const lines: Record<string, string[]> = { mangle: [], filter: [], nat: [] };
  for (const table of ['mangle', 'nat'] as const) {
    lines[table]!.push(...part.own[table].chains.map((chain) => `:${chain} - [0:0]`), part.own[table].rules);
  }
  for (const [chain, table] of Object.entries(SHARED_CHAINS)) lines[table]!.push(part.shared[chain as keyof typeof SHARED_CHAINS]);
  return Object.entries(lines).map(([table, text]) => `*${table}\n${text.join('\n')}\nCOMMIT\n`).join('');
}

/** The chains a restore input declares, by table. */
function declaredChains(text: string): Map<string, Set<string>> {
  const declared = new Map<string, Set<string>>();
  let chains = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) declared.set(line.slice(1), (chains = new Set()));
    else if (line.startsWith(':')) chains.add(line.slice(1).split(' ')[0]!);
  }
  return declared;
}

function iptablesProblems(text: string, declaredElsewhere: ReadonlyMap<string, ReadonlySet<string>> = new Map()): string[] {
  const problems: string[] = [];
  let table = '';
  let chains = new Set<string>();
  const pending: [string, string][] = [];
  const finish = () => {
    for (const [chain, line] of pending) if (!chains.has(chain)) problems.push(`*${table}: ${line}: chain ${chain} is not declared`);
    pending.length = 0;
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1);
      chains = new Set([...BUILTIN_CHAINS, ...declaredElsewhere.get(table) ?? []]);
    } else if (line.startsWith(':')) {
      const chain = line.slice(1).split(' ')[0]!;
      if (chain.length > IPTABLES_MAX_CHAIN) problems.push(`*${table}: chain name ${chain} is longer than ${IPTABLES_MAX_CHAIN} characters`);
      chains.add(chain);
    } else if (line.startsWith('-A ')) {
      pending.push([line.split(' ')[1]!, line]);
      const jump = / -j (FERRY-\S+)/.exec(line);
      if (jump) pending.push([jump[1]!, line]);
    } else if (line === 'COMMIT') {
      finish();
    }
  }
  finish();
  return problems;
}
