// Reads Kubernetes objects from YAML or JSON manifests (files, directories or standard input), as kubectl writes them.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

const MANIFEST_FILE = /\.(ya?ml|json)$/i;
/** The path that means standard input, as for kubectl -f. */
export const STDIN_PATH = '-';
const STDIN_NAME = '<stdin>';

/** A manifest that could not be read or parsed, naming the file. */
export class ManifestError extends Error {}

/**
 * Every object in the given files and directories (directories are read recursively, in name order);
 * `-` reads standard input, YAML or JSON.
 */
export async function readManifests(paths: string[], stdin: AsyncIterable<string | Buffer> = process.stdin): Promise<unknown[]> {
  const objects: unknown[] = [];
  if (paths.filter((path) => path === STDIN_PATH).length > 1) throw new ManifestError(`${STDIN_NAME}: can be read only once, but - was given more than once`);
  for (const path of paths) {
    if (path === STDIN_PATH) {
      const text = await readStdin(stdin);
      // kubectl -o json prints one object; a JSON.parse that fails gets YAML's error message, with a line.
      const json = /^\s*\{/.test(text) ? tryJSON(text) : undefined;
      objects.push(...(json === undefined ? parseManifest(text, STDIN_NAME) : [json]));
      continue;
    }
    for (const file of await manifestFiles(path)) {
      const text = await readFile(file, 'utf8');
      // JSON is YAML too, but JSON.parse reads a large generated file many times faster.
      for (const object of file.endsWith('.json') ? parseJSON(text, file) : parseManifest(text, file)) objects.push(object);
    }
  }
  return objects;
}

/** The objects of one multi-document YAML (or JSON) text; empty documents are skipped. */
export function parseManifest(text: string, source: string): unknown[] {
  const objects: unknown[] = [];
  for (const document of parseAllDocuments(text)) {
    const problem = document.errors[0];
    if (problem) throw new ManifestError(`${source}: ${problem.message}`);
    const object: unknown = document.toJS({ maxAliasCount: 100 });
    if (object !== null && object !== undefined) objects.push(object);
  }
  return objects;
}

async function readStdin(stdin: AsyncIterable<string | Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  } catch (error) {
    throw new ManifestError(`${STDIN_NAME}: ${(error as Error).message}`);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function tryJSON(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function parseJSON(text: string, source: string): unknown[] {
  try {
    return [JSON.parse(text)];
  } catch (error) {
    throw new ManifestError(`${source}: ${(error as Error).message}`);
  }
}

async function manifestFiles(path: string): Promise<string[]> {
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    throw new ManifestError(`${path}: ${error.code === 'ENOENT' ? 'no such file or directory' : error.message}`);
  });
  if (!info.isDirectory()) return [path];
  const entries = await readdir(path, { withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) files.push(...(await manifestFiles(child)));
    else if (MANIFEST_FILE.test(entry.name)) files.push(child);
  }
  return files;
}
