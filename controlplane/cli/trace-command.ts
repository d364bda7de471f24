// `ferry trace`: the flags read (--from, --to ADDR:PORT or [ADDR]:PORT, --protocol) and the answer
// printed as text or JSON.
import { InvalidArgumentError } from 'commander';
import { canonicalIP } from '../model/ip.js';
import { traceConnection, type TraceAnswer } from '../trace/trace.js';
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

/** The answer for the desired rules, as text or as one JSON object. */
export function traceReport(desired: DesiredRules, from: string, to: { destination: string; port: number }, protocol: string, output: 'text' | 'json'): string {
  const answer = traceConnection(desired.rules, desired.nodeAddresses, { source: from, ...to, protocol: protocol.toLowerCase() as L4Protocol });
  if (output === 'json') return `${JSON.stringify(answer, null, 2)}\n`;
  return textOf(answer, desired.rules.node);
}

function textOf(answer: TraceAnswer, node: string): string {
  const lines = [`on node ${node}:`, ...answer.steps.map((step) => `  ${step}`), `verdict: ${answer.verdict}${answer.masquerade ? ' (masqueraded)' : ''}`];
  for (const endpoint of answer.endpoints) lines.push(`  -> ${endpointDestination(endpoint)}  ${(endpoint.probability * 100).toFixed(1)} %`);
  return `${lines.join('\n')}\n`;
}
