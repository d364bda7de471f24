// Bundles the compiled CLI (dist/controlplane/cli/main.js) and its dependencies into dist/cli/, which
// bin/ferry.js runs. Loading ferry's modules and execa, yaml, immutable, handlebars and commander file
// by file took 0.3 s before a command did anything (`ferry --version`); one file takes a fifth of that.
// Code splitting keeps what only some commands need (the Kubernetes client, the agent) in chunks of their
// own, loaded when they are imported.
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist/cli');
await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: { ferry: join(root, 'dist/controlplane/cli/main.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // The CommonJS packages inside an ES module bundle call require() for Node's own modules.
  banner: { js: "import { createRequire as ferryCreateRequire } from 'node:module'; const require = ferryCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
