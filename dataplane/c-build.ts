// Compiling ferry's C sources once per version: outputs live in a cache directory under the digest
// of the source and the exact compiler command, so a changed source or flag builds anew.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
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

/** What `cachedBuild` is asked to build: a name, the sources (the first is compiled) and the compiler command. */
export interface BuildSpec {
  name: string;
  extension: string;
  sources: string[];
  command: (output: string) => [string, string[]];
}

/** Where `spec`'s output is: prebuilt, or its place in the cache (`cached`: whether it is there already). */
async function buildOutput(spec: BuildSpec, options: BuildOptions): Promise<{ path: string; cached: boolean }> {
  const shipped = await prebuilt(spec.name, spec.extension);
  if (shipped) return { path: shipped, cached: true };
  const [tool, args] = spec.command('OUTPUT');
  const hash = createHash('sha256');
  for (const source of spec.sources) hash.update(await readFile(source));
  const digest = hash.update(JSON.stringify([tool, args])).digest('hex').slice(0, 16);
  const path = join(cacheDirectory(options.cacheDir), `${spec.name}-${digest}${spec.extension}`);
  return { path, cached: await exists(path) };
}

/** Whether `spec` is built already (prebuilt or cached): then no compiler is needed to use it. */
export async function builtAlready(spec: BuildSpec, options: BuildOptions = {}): Promise<boolean> {
  return (await buildOutput(spec, options)).cached;
}

/**
 * The path of what `spec.command(output)` compiles from `spec.sources` (every one counts for the
 * cache: a header the first includes too): the prebuilt one, else built now unless the cache has it.
 */
export async function cachedBuild(spec: BuildSpec, options: BuildOptions): Promise<string> {
  const { path: output, cached } = await buildOutput(spec, options);
  if (cached) return output;
  await mkdir(dirname(output), { recursive: true });
  // A private name first, then rename: two builds at once (processes or calls) both end with a whole file.
  const partial = `${output}.${randomBytes(6).toString('hex')}.partial`;
  const [realTool, realArgs] = spec.command(partial);
  try {
    await runChecked(options.runner ?? execaRunner, `compiling ${spec.sources[0]}`, realTool, realArgs);
    await rename(partial, output);
  } finally {
    await rm(partial, { force: true });
  }
  return output;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
