// `ferry trace`: the flags read (--from, --to ADDR:PORT or [ADDR]:PORT, --protocol) and the answer
// printed as text or JSON.
import { InvalidArgumentError } from 'commander';
import { canonicalIP } from '../model/ip.js';
import { traceConnection, type TraceAnswer } from '../trace/trace.js';
import { frontendRules, type FrontendState } from '../../rules/frontends.js';
import type { L4Protocol } from '../../rules/node-rules.js';
import { endpointDestination } from '../../dataplane/render-shapes.js';
import type { DesiredRules } from './pipeline.js';

/** `--from`: an IP address, canonical. */
export function parseSource(value: string): string {
  const ip = canonicalIP(value.trim());
  if (!ip) throw new InvalidArgumentError(`--from ${JSON.stringify(value)} is not an IP address`);
  return ip;
}

/** `--to`: ADDR:PORT, or [ADDR]:PORT for IPv6. */
export function parseDestination(value: string): { destination: string; port: number } {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(value.trim()) ?? /^([^:[\]]+):(\d+)$/.exec(value.trim());
  const ip = match && canonicalIP(match[1]!);
  const port = match ? Number(match[2]) : NaN;
  if (!ip || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`--to ${JSON.stringify(value)} is not ADDR:PORT (or [ADDR]:PORT for IPv6) with a port from 1 to 65535`);
  }
  return { destination: ip, port };
}

/**
 * The answer for the desired rules, or with `live` (the frontends read back from the kernel) for what the
 * kernel holds now, with whether the desired rules agree; as text or as one JSON object.
 */
export function traceReport(desired: DesiredRules, from: string, to: { destination: string; port: number }, protocol: string, output: 'text' | 'json', live?: FrontendState): string {
  const query = { source: from, ...to, protocol: protocol.toLowerCase() as L4Protocol };
  const wanted = traceConnection(desired.rules, desired.nodeAddresses, query);
  const answer = live ? traceConnection(frontendRules(desired.rules.node, live), desired.nodeAddresses, query) : wanted;
  // The kernel's objects may not name the Service or tell a load-balancer IP from an external one: compare what they hold.
  const held = (trace: TraceAnswer) => JSON.stringify([trace.verdict, trace.masquerade, trace.endpoints.map((endpoint) => [endpoint.ip, endpoint.port, endpoint.probability.toFixed(6)])]);
  const agrees = held(answer) === held(wanted);
  if (output === 'json') return `${JSON.stringify(live ? { ...answer, source: 'kernel', matchesDesired: agrees } : answer, null, 2)}\n`;
  const text = textOf(answer, desired.rules.node, live ? ` (the ${desired.backend} ${desired.backend === 'ebpf' ? 'maps' : 'rules'} in the kernel now)` : '');
  return live && !agrees ? `${text}the desired rules answer otherwise (${wanted.verdict}${wanted.endpoints.length ? ` to ${wanted.endpoints.map(endpointDestination).join(', ')}` : ''}): ferry diff shows the difference\n` : text;
}

function textOf(answer: TraceAnswer, node: string, from: string): string {
  const lines = [`on node ${node}${from}:`, ...answer.steps.map((step) => `  ${step}`), `verdict: ${answer.verdict}${answer.masquerade ? ' (masqueraded)' : ''}`];
  for (const endpoint of answer.endpoints) lines.push(`  -> ${endpointDestination(endpoint)}  ${(endpoint.probability * 100).toFixed(1)} %`);
  return `${lines.join('\n')}\n`;
}
