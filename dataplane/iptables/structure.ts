// The structure check of rendered iptables rules, on the objects render printed them from: chain names
// within the kernel's length, every jump's target a chain of its table (the kernel's, the head's, or
// the port's own). A rendering made from the previous one is checked in the ports that changed (the rest
// was checked when the rendering it was made from was).
import type { RenderedRules } from '../backend.js';
import { splitPortKey } from '../../rules/port-changes.js';
import { partOf } from '../port-parts.js';
import { reportProblems } from '../structure-error.js';
import { BUILTIN_CHAINS, type IptablesTable } from './head.js';
import { iptablesOf, SHARED_CHAINS, type IptablesFamilyRendering, type IptablesPortPart } from './render.js';

// iptables chain names: XT_EXTENSION_MAXNAMELEN is 29 bytes including the terminating NUL.
const IPTABLES_MAX_CHAIN = 28;
const TABLES: readonly IptablesTable[] = ['mangle', 'filter', 'nat'];

/** Throws a StructureError naming every problem of every family's rules: whole, or in the changed ports. */
export function checkIptables(rendered: RenderedRules): void {
  const iptables = iptablesOf(rendered);
  const problems: string[] = [];
  for (const family of iptables.families) {
    problems.push(...headProblems(family));
    const parts = iptables.update
      ? [...iptables.update.changed].map(splitPortKey).flatMap(({ family: keyFamily, id }) => (keyFamily === family.rules.family ? partOf(family.rules, family.ports, id) ?? [] : []))
      : family.ports;
    for (const part of parts) problems.push(...portProblems(family, part));
  }
  reportProblems('iptables', problems);
}

function headProblems(family: IptablesFamilyRendering): string[] {
  const { declared, hooks, nodePortsChain } = family.head;
  return TABLES.flatMap((table) => [
    ...tooLong(table, declared[table]),
    ...hooks[table].flatMap((hook) => [
      ...(BUILTIN_CHAINS.has(hook.chain) ? [] : [`*${table}: a hook rule in ${hook.chain}, which is not one of the kernel's chains`]),
      ...undeclared(table, `-A ${hook.chain}`, [hook.jump], new Set(declared[table])),
    ]),
    ...(table === 'nat' ? undeclared(table, 'the node ports rule', [nodePortsChain], new Set(declared.nat)) : []),
    // The chains every port writes lines into.
    ...Object.entries(SHARED_CHAINS).filter(([chain, home]) => home === table && !declared[table].includes(chain)).map(([chain]) => `*${table}: ports write into ${chain}, which is not declared`),
  ]);
}

/** A port may jump to its own chains and to the head's, nothing else. */
function portProblems(family: IptablesFamilyRendering, part: IptablesPortPart): string[] {
  return TABLES.flatMap((table) => {
    const own = table === 'filter' ? [] : part.own[table].chains;
    const known = new Set([...family.head.declared[table], ...own]);
    return [...tooLong(table, own), ...undeclared(table, `a rule of ${own[0] ?? 'a port'}`, part.references[table], known)];
  });
}

function tooLong(table: IptablesTable, chains: readonly string[]): string[] {
  return chains.filter((chain) => chain.length > IPTABLES_MAX_CHAIN).map((chain) => `*${table}: chain name ${chain} is longer than ${IPTABLES_MAX_CHAIN} characters`);
}

function undeclared(table: IptablesTable, where: string, targets: readonly string[], known: ReadonlySet<string>): string[] {
  return targets.filter((chain) => !known.has(chain)).map((chain) => `*${table}: ${where} jumps to ${chain}, which is not declared`);
}
