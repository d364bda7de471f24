// Compiling ferry's C sources once per version: outputs live in a cache directory under the digest
// of the source and the exact compiler command, so a changed source or flag builds anew.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../controlplane/package-root.js';
import { execaRunner, runChecked, type Runner } from '../runner.js';

/** Where compiled objects go: the override, $FERRY_CACHE_DIR, $XDG_CACHE_HOME/ferry, /var/cache/ferry for root, else ~/.cache/ferry. */
export function cacheDirectory(override?: string): string {
  if (override) return override;
  if (process.env.FERRY_CACHE_DIR) return process.env.FERRY_CACHE_DIR;
  if (process.env.XDG_CACHE_HOME) return join(process.env.XDG_CACHE_HOME, 'ferry');
  return process.getuid?.() === 0 ? '/var/cache/ferry' : join(homedir(), '.cache', 'ferry');
}

/** The BPF programs' source, shipped with the templates. */
export const SOCKETS_SOURCE = join(packageRoot(), 'templates', 'ebpf', 'sockets.bpf.c');
/** The map writer's source. */
export const MAP_WRITER_SOURCE = join(packageRoot(), 'dataplane', 'ebpf', 'map-writer.c');

// clang's BPF target has no multiarch directory of its own; linux/bpf.h needs the host's asm/types.h.
const MULTIARCH: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };

/** Compiles the cgroup socket programs (clang -O2 -target bpf); the object's path. */
export function buildSocketsObject(options: { cacheDir?: string; runner?: Runner } = {}): Promise<string> {
  const include = MULTIARCH[process.arch] ? ['-idirafter', `/usr/include/${MULTIARCH[process.arch]}`] : [];
  return cachedBuild('sockets', '.bpf.o', SOCKETS_SOURCE, (output) => ['clang', ['-O2', '-g', '-target', 'bpf', ...include, '-c', SOCKETS_SOURCE, '-o', output]], options);
}

/** Compiles the map writer helper with the system's cc against libbpf; the binary's path. */
export function buildMapWriter(options: { cacheDir?: string; runner?: Runner } = {}): Promise<string> {
  return cachedBuild('map-writer', '', MAP_WRITER_SOURCE, (output) => ['cc', ['-O2', '-o', output, MAP_WRITER_SOURCE, '-lbpf']], options);
}

async function cachedBuild(
  name: string, extension: string, source: string, command: (output: string) => [string, string[]],
  options: { cacheDir?: string; runner?: Runner },
): Promise<string> {
  const directory = cacheDirectory(options.cacheDir);
  const [tool, args] = command('OUTPUT');
  const digest = createHash('sha256').update(await readFile(source)).update(JSON.stringify([tool, args])).digest('hex').slice(0, 16);
  const output = join(directory, `${name}-${digest}${extension}`);
  if (await exists(output)) return output;
  await mkdir(directory, { recursive: true });
  // A private name first, then rename: two builds at once (processes or calls) both end with a whole file.
  const partial = `${output}.${randomBytes(6).toString('hex')}.partial`;
  const [realTool, realArgs] = command(partial);
  try {
    await runChecked(options.runner ?? execaRunner, `compiling ${source}`, realTool, realArgs);
    await rename(partial, output);
  } finally {
    await rm(partial, { force: true });
  }
  return output;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
