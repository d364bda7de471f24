// The structure check of rendered iptables-restore input: chain names within the kernel's length, every
// rule's chain and jump target declared in its table.
import type { RenderedRules } from '../backend.js';
import { reportProblems } from '../structure-error.js';

// iptables chain names: XT_EXTENSION_MAXNAMELEN is 29 bytes including the terminating NUL.
const IPTABLES_MAX_CHAIN = 28;
const BUILTIN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/** Throws a StructureError naming every problem of one restore input. */
export function checkIptablesText(text: string): void {
  reportProblems('iptables', iptablesProblems(text));
}

/** The same for every family's input. */
export function checkIptables(rendered: RenderedRules): void {
  for (const part of rendered.texts) checkIptablesText(part.text);
}

function iptablesProblems(text: string): string[] {
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
      chains = new Set(BUILTIN_CHAINS);
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
