// The registry: one entry per backend, under the names of backend-names.ts.
import type { Backend, RenderedRules } from './backend.js';
import type { BackendName } from './backend-names.js';
import { ebpfBackend } from './ebpf/backend.js';
import { iptablesBackend } from './iptables/backend.js';
import { nftablesBackend } from './nftables/backend.js';

export const BACKENDS: Readonly<Record<BackendName, Backend>> = { nftables: nftablesBackend, iptables: iptablesBackend, ebpf: ebpfBackend };

/** The backend that rendered these rules. */
export function backendOf(rendered: RenderedRules): Backend {
  return BACKENDS[rendered.backend];
}
