// The root of the ferry package: templates/, bin/ and dist/ sit there, above sources and compiled copies alike.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The directory holding ferry's package.json, found by walking up from this module. */
export function packageRoot(): string {
  if (root) return root;
  let directory = dirname(fileURLToPath(import.meta.url));
  while (!isFerryRoot(directory)) {
    const parent = dirname(directory);
    if (parent === directory) throw new Error('the ferry package root (package.json) was not found above its sources');
    directory = parent;
  }
  root = directory;
  return root;
}

function isFerryRoot(directory: string): boolean {
  const manifest = join(directory, 'package.json');
  return existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'ferry';
}
