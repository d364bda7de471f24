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
    if (!['nftables', 'iptables', 'nft-service-port', 'ebpf-companion'].includes(name)) handlebars.registerPartial(name, compile(name));
  }
  return {
    nftables: compile('nftables'), iptables: compile('iptables'), nftTable: compile('nft-table'), nftServicePort: compile('nft-service-port'),
    ebpfCompanion: compile('ebpf-companion'),
  };
}
