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
  // What the renderers call hands back one flat string (see flat); a partial's output is joined into its caller's.
  const printer = (name: string) => {
    const template = compile(name);
    return (context: object): string => flat(template(context));
  };
  // Only the Handlebars files here are partials (templates/ebpf/ holds BPF C sources).
  for (const file of readdirSync(directory).filter((entry) => entry.endsWith('.hbs'))) {
    const name = file.replace(/\.hbs$/, '');
    if (!['nft-script-header', 'nft-table-open', 'nft-table-close', 'iptables', 'nft-service-port', 'ebpf-companion'].includes(name) && !name.startsWith('iptables-port-')) handlebars.registerPartial(name, compile(name));
  }
  return {
    // An nft script in the order it is printed (and can be streamed to nft): the header, then per table
    // its opening (the commands that replace it, its fixed chains), each port's chains, its sets and maps.
    nftScriptHeader: printer('nft-script-header'), nftTableOpen: printer('nft-table-open'), nftServicePort: printer('nft-service-port'), nftTableClose: printer('nft-table-close'),
    // Also a partial of nft-collection: incremental.ts writes a changed element as a table prints it.
    nftVerdictElement: printer('nft-verdict-element'),
    iptables: printer('iptables'), ebpfCompanion: printer('ebpf-companion'),
    // A Service port's iptables rules, piece by piece (its own chains by table, its lines in each chain
    // the ports share), and the table-wide lines of two shared chains: a change rewrites only these.
    iptablesPort: {
      firewallEntries: printer('iptables-port-firewall-entries'), firewallChains: printer('iptables-port-firewall-chains'),
      noEndpoints: printer('iptables-port-no-endpoints'), services: printer('iptables-port-services'), nodePorts: printer('iptables-port-node-ports'),
      chains: printer('iptables-port-chains'),
    },
    iptablesServicesTail: printer('iptables-services-tail'), iptablesClusterIPs: printer('iptables-cluster-ips'),
  };
}

/**
 * The same text in one piece. A template's output is a tree of the fragments it was joined from (V8's
 * cons strings): kept as such, 10,000 nftables ports' chains held 32 MB where their text is 10 MB (by
 * hand). Reading a character makes V8 flatten the string in place, and the fragments go (searching it
 * does not: V8 searches a flat copy and keeps the tree).
 */
function flat(text: string): string {
  text.charCodeAt(0);
  return text;
}
