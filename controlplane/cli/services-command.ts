// `ferry services`: what the kernel holds now, one line per Service frontend (address, port, protocol,
// kind) with its endpoints and their shares, read back from the live rules or maps of each backend
// (as `cilium-dbg service list` lists a node's services). Nothing here reads the cluster.
import { stringify } from 'yaml';
import { readFrontends } from '../../dataplane/dataplane.js';
import { BACKEND_NAMES, type BackendName } from '../../dataplane/backend-names.js';
import { endpointDestination } from '../../dataplane/render-shapes.js';
import type { Runner } from '../../dataplane/runner.js';
import type { ServiceFrontend } from '../../rules/frontends.js';
import { backendOptions, type PlacementOptions } from './pipeline.js';
import { printTable } from './table.js';

export const SERVICES_OUTPUTS = ['table', 'wide', 'json', 'yaml'] as const;

export interface ServicesOptions extends PlacementOptions {
  /** Only this backend's kernel state; every backend's when left out. */
  backend?: BackendName;
  namespace?: string;
  allNamespaces?: boolean;
  output: (typeof SERVICES_OUTPUTS)[number];
}

/** One row of `-o json` and `-o yaml`: a frontend and the backend that holds it. */
export type FrontendRecord = ServiceFrontend & { backend: BackendName };

/** The report, and a message for standard error when nothing is programmed. */
export async function servicesReport(runner: Runner, options: ServicesOptions): Promise<{ text: string; message?: string }> {
  if (options.namespace !== undefined && options.allNamespaces) throw new Error('-n and -A exclude each other');
  const held = await readFrontends(runner, options.backend ? [options.backend] : BACKEND_NAMES, backendOptions(options));
  const records: FrontendRecord[] = [...held].flatMap(([backend, state]) => state.frontends.map((frontend) => ({ backend, ...frontend })));
  // -n keeps the frontends whose kernel objects name a Service of the namespace (eBPF maps name none).
  const shown = options.namespace === undefined ? records : records.filter((record) => record.service?.startsWith(`${options.namespace}/`));
  const message = records.length === 0 ? `no Service frontends in the kernel (${options.backend ?? 'any backend'})`
    : shown.length === 0 ? `no frontend names a Service of namespace ${options.namespace}${held.get('ebpf')?.frontends.length ? ' (eBPF maps name none: use -A)' : ''}` : undefined;
  return { text: printRecords(shown, options.output), message };
}

function printRecords(records: FrontendRecord[], output: ServicesOptions['output']): string {
  if (output === 'json') return `${JSON.stringify(records, null, 2)}\n`;
  if (output === 'yaml') return stringify(records);
  if (records.length === 0) return '';
  const wide = output === 'wide';
  const header = ['BACKEND', 'FRONTEND', 'KIND', 'SERVICE', 'VERDICT', ...(wide ? ['AFFINITY', 'SOURCE RANGES'] : []), 'ENDPOINTS'];
  const rows = records.map((record) => [
    record.backend,
    `${endpointDestination({ ip: record.address, port: record.port })}/${record.protocol}`,
    record.kind,
    record.service ?? '-',
    record.verdict,
    ...(wide ? [record.affinitySeconds > 0 ? `${record.affinitySeconds}s` : '-', record.sourceRanges.join(',') || '-'] : []),
    record.endpoints.map((endpoint) => `${endpointDestination(endpoint)} ${percent(endpoint.probability)}`).join(', ') || '-',
  ]);
  return printTable(header, rows);
}

/** A share as a percentage: whole where it is whole, else one decimal (three below 1 %). */
function percent(probability: number): string {
  const value = probability * 100;
  const text = Number.isInteger(Math.round(value * 1000) / 1000) ? String(Math.round(value)) : value < 1 ? value.toFixed(3) : value.toFixed(1);
  return `${text}%`;
}
