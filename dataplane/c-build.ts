// Compiling ferry's C sources once per version: outputs live in a cache directory under the digest
// of the source and the exact compiler command, so a changed source or flag builds anew.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../controlplane/package-root.js';
import { execaRunner, runChecked, type Runner } from './runner.js';

/** Where the container image puts what it compiled at build time (the image has no compiler): `NAME` + extension. */
export const PREBUILT_DIRECTORY = join(packageRoot(), 'libexec');

/** The prebuilt output of `name`, when the installation has one. */
export async function prebuilt(name: string, extension: string): Promise<string | undefined> {
  const path = join(PREBUILT_DIRECTORY, `${name}${extension}`);
  return (await exists(path)) ? path : undefined;
}

/** Where compiled objects go: the override, $FERRY_CACHE_DIR, $XDG_CACHE_HOME/ferry, /var/cache/ferry for root, else ~/.cache/ferry. */
export function cacheDirectory(override?: string): string {
  if (override) return override;
  if (process.env.FERRY_CACHE_DIR) return process.env.FERRY_CACHE_DIR;
  if (process.env.XDG_CACHE_HOME) return join(process.env.XDG_CACHE_HOME, 'ferry');
  return process.getuid?.() === 0 ? '/var/cache/ferry' : join(homedir(), '.cache', 'ferry');
}

/** Where to build and how to run the compiler. */
export interface BuildOptions {
  cacheDir?: string;
  runner?: Runner;
}

/**
 * The path of what `command(output)` compiles from `sources` (the first is compiled, every one counts
 * for the cache: a header it includes too): the prebuilt one, else built now unless the cache has it.
 */
export async function cachedBuild(
  name: string, extension: string, sources: string[], command: (output: string) => [string, string[]], options: BuildOptions,
): Promise<string> {
  const shipped = await prebuilt(name, extension);
  if (shipped) return shipped;
  const directory = cacheDirectory(options.cacheDir);
  const [tool, args] = command('OUTPUT');
  const hash = createHash('sha256');
  for (const source of sources) hash.update(await readFile(source));
  const digest = hash.update(JSON.stringify([tool, args])).digest('hex').slice(0, 16);
  const output = join(directory, `${name}-${digest}${extension}`);
  if (await exists(output)) return output;
  await mkdir(directory, { recursive: true });
  // A private name first, then rename: two builds at once (processes or calls) both end with a whole file.
  const partial = `${output}.${randomBytes(6).toString('hex')}.partial`;
  const [realTool, realArgs] = command(partial);
  try {
    await runChecked(options.runner ?? execaRunner, `compiling ${sources[0]}`, realTool, realArgs);
    await rename(partial, output);
  } finally {
    await rm(partial, { force: true });
  }
  return output;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
