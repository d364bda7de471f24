// The golden scenarios: the example cluster plus edge cases, rendered for node-a under a few configs.
import { computeNodeRules, type ComputeConfig, type EndpointWeights } from '../../controlplane/compute/compute.js';
import { endpointKey } from '../../rules/names.js';
import { buildClusterState } from '../../controlplane/model/cluster-state.js';
import { readManifests } from '../../controlplane/sources/manifests.js';
import { render, renderedText } from '../../dataplane/render.js';
import { BACKEND_NAMES, type BackendName } from '../../dataplane/backend-names.js';
import { testConfig } from './objects.js';

const base = testConfig;

const cluster = ['../../examples/cluster.yaml', '../fixtures/edge-cases.yaml'];

/** Each scenario: manifests (default: the example cluster and the edge cases), a config and endpoint weights, rendered for node-a. */
export const scenarios: Record<string, { config: ComputeConfig; weights: EndpointWeights; files?: string[] }> = {
  default: { config: base, weights: new Map() },
  'masquerade-all': {
    config: { ...base, detectLocalMode: 'NodeCIDR', nodePortAddresses: { kind: 'all' }, masqueradeAll: true },
    weights: new Map([[endpointKey('udp', '10.244.1.2', 53), 1], [endpointKey('udp', '10.244.2.2', 53), 3]]),
  },
  'node-port-cidrs': {
    config: { ...base, clusterCIDRs: [], nodePortAddresses: { kind: 'cidrs', cidrs: ['192.168.56.0/24', 'fd00:56::/64'] }, masqueradeBit: 5 },
    weights: new Map([[endpointKey('tcp', '10.244.1.2', 53), 0.2], [endpointKey('tcp', '10.244.2.2', 53), 0.5]]),
  },
  // An application's Services and Pods without EndpointSlices: endpoints derived from the selectors.
  'app-pods': { config: base, weights: new Map(), files: ['../../examples/app.yaml'] },
};

export const backends: readonly BackendName[] = BACKEND_NAMES;

export const goldenPath = (scenario: string, backend: BackendName) =>
  new URL(`../golden/${scenario}.${GOLDEN_EXTENSIONS[backend]}`, import.meta.url);

const GOLDEN_EXTENSIONS: Record<BackendName, string> = { nftables: 'nft', iptables: 'iptables', ebpf: 'ebpf' };

/** Renders a golden scenario; throws if the manifests hold any invalid object. */
export async function renderScenario(scenario: string, backend: BackendName) {
  const { config, weights, files = cluster } = scenarios[scenario]!;
  const objects = await readManifests(files.map((file) => new URL(file, import.meta.url).pathname));
  const { state, errors } = buildClusterState(objects);
  if (errors.length > 0) throw new Error(`fixture errors: ${JSON.stringify(errors)}`);
  const rules = computeNodeRules(state, 'node-a', config, weights);
  const rendered = render(rules, backend);
  return { rules, rendered, text: renderedText(rendered) };
}
