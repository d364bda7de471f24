// The Handlebars templates in templates/: the one place where rule syntax lives.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import { packageRoot } from '../controlplane/package-root.js';

/** The compiled templates the renderers call; every other .hbs file is a partial of them. */
export const templates = loadTemplates();

function loadTemplates() {
  const handlebars = Handlebars.create();
  const directory = join(packageRoot(), 'templates');
  // data: false: no template reads @index or @last, and tracking them cost a fifth of the rendering.
  const compile = (name: string) => handlebars.compile(readFileSync(join(directory, `${name}.hbs`), 'utf8'), { noEscape: true, strict: true, data: false });
  // Only the Handlebars files here are partials (templates/ebpf/ holds BPF C sources).
  for (const file of readdirSync(directory).filter((entry) => entry.endsWith('.hbs'))) {
    const name = file.replace(/\.hbs$/, '');
    if (!['nft-script-header', 'nft-table-open', 'nft-table-close', 'iptables', 'nft-service-port', 'ebpf-companion'].includes(name) && !name.startsWith('iptables-port-')) handlebars.registerPartial(name, compile(name));
  }
  return {
    // An nft script in the order it is printed (and can be streamed to nft): the header, then per table
    // its opening (the commands that replace it, its fixed chains), each port's chains, its sets and maps.
    nftScriptHeader: compile('nft-script-header'), nftTableOpen: compile('nft-table-open'), nftServicePort: compile('nft-service-port'), nftTableClose: compile('nft-table-close'),
    // Also a partial of nft-collection: incremental.ts writes a changed element as a table prints it.
    nftVerdictElement: compile('nft-verdict-element'),
    iptables: compile('iptables'), ebpfCompanion: compile('ebpf-companion'),
    // A Service port's iptables rules, piece by piece (its own chains by table, its lines in each chain
    // the ports share), and the table-wide lines of two shared chains: a change rewrites only these.
    iptablesPort: {
      firewallEntries: compile('iptables-port-firewall-entries'), firewallChains: compile('iptables-port-firewall-chains'),
      noEndpoints: compile('iptables-port-no-endpoints'), services: compile('iptables-port-services'), nodePorts: compile('iptables-port-node-ports'),
      chains: compile('iptables-port-chains'),
    },
    iptablesServicesTail: compile('iptables-services-tail'), iptablesClusterIPs: compile('iptables-cluster-ips'),
  };
}
