// The one way through the data for the commands: config and the cluster's objects (manifests, or one
// list of the API) in, rendered rules out.
import { readFile } from 'node:fs/promises';
import { computeFromIndex } from '../compute/compute.js';
import { ClusterIndex } from '../model/cluster-index.js';
import type { NodeRules } from '../../rules/node-rules.js';
import { computeConfig, defaultConfig, parseKubeProxyConfiguration } from '../config/kube-proxy-config.js';
import { buildClusterState } from '../model/cluster-state.js';
import type { ModelError } from '../model/types.js';
import { readManifests } from '../sources/manifests.js';
import { render, type BackendOptions, type RenderedRules } from '../../dataplane/render.js';
import { DEFAULT_BACKEND, type BackendName } from '../../dataplane/backend-names.js';

/** Where the cluster's objects come from: manifests (`-f`), or the API (`--kubeconfig`, `--context`, `--master`). */
export interface InputOptions {
  file?: string[];
  kubeconfig?: string;
  context?: string;
  master?: string;
}

/** The cluster's objects as read, and what to call where they came from. */
export interface Input {
  objects: unknown[];
  /** The kubeconfig context's namespace (kubectl's default for -n); undefined for manifests. */
  namespace?: string;
  /** "the input", or "the API server URL". */
  description: string;
}

/** Reads the manifests, or lists the API once (its client is loaded only then: it costs every command ~0.3 s). */
export async function readInput(options: InputOptions): Promise<Input> {
  if (options.file) return { objects: await readManifests(options.file), description: 'the input' };
  const { readCluster } = await import('../sources/kubernetes.js');
  return readCluster(options);
}

/** Options shared by render, diff, apply and trace. */
export interface RuleOptions extends PlacementOptions, InputOptions {
  node: string;
  backend?: BackendName;
  config?: string;
}

/** Where the eBPF backend's programs go (`--cgroup-root`, `--bpf-root`, `--devices`); the other backends ignore them. */
export interface PlacementOptions {
  cgroupRoot?: string;
  bpfRoot?: string;
  devices?: string[];
}

/** The placement flags as the backends take them. */
export function backendOptions(options: PlacementOptions): BackendOptions {
  return { ebpf: { cgroupRoot: options.cgroupRoot, bpfRoot: options.bpfRoot, devices: options.devices } };
}

/** What the pipeline produced, with everything worth telling the user. */
export interface DesiredRules {
  backend: BackendName;
  options: BackendOptions;
  rules: NodeRules;
  /** The node's addresses as its Node object gives them (InternalIP, then ExternalIP). */
  nodeAddresses: string[];
  /** Rendered when first read: `apply` never reads it (the backend renders as it writes). */
  readonly rendered: RenderedRules;
  warnings: string[];
  modelErrors: ModelError[];
}

/**
 * Reads the config and the cluster's objects, computes the node's rules and renders them for the chosen
 * backend. `chosen` hears the backend and its placement as soon as the config names them, before the
 * objects are read (apply starts the backend's sync meanwhile).
 */
export async function desiredRules(options: RuleOptions, chosen?: (backend: BackendName, placement: BackendOptions) => void): Promise<DesiredRules> {
  const { config, warnings } = options.config
    ? parseKubeProxyConfiguration(await readFile(options.config, 'utf8'), options.config)
    : { config: defaultConfig, warnings: [] };
  const backend = options.backend ?? config.mode ?? DEFAULT_BACKEND;
  const placement = backendOptions(options);
  chosen?.(backend, placement);
  const { state, errors, warnings: readWarnings } = buildClusterState((await readInput(options)).objects);
  const index = ClusterIndex.of(state);
  const rules = computeFromIndex(index, options.node, computeConfig(config, backend));
  const modelWarnings = [...readWarnings, ...index.conflicts(index.services.keys())];
  const node = state.nodes.find((candidate) => candidate.name === options.node)!;
  let rendered: RenderedRules | undefined;
  return {
    backend, options: placement, rules, nodeAddresses: [...node.internalIPs, ...node.externalIPs],
    get rendered() {
      return (rendered ??= render(rules, backend, placement));
    },
    warnings: [...warnings, ...modelWarnings.map((warning) => `${warning.kind} ${warning.object}: ${warning.message}`)],
    modelErrors: errors,
  };
}
