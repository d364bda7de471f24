// Compiling the eBPF backend's C sources (see ../c-build.ts for the cache).
import { join } from 'node:path';
import { packageRoot } from '../../controlplane/package-root.js';
import { cachedBuild, type BuildOptions } from '../c-build.js';

/** The BPF programs' source, shipped with the templates. */
export const SOCKETS_SOURCE = join(packageRoot(), 'templates', 'ebpf', 'sockets.bpf.c');
/** The map writer's source. */
export const MAP_WRITER_SOURCE = join(packageRoot(), 'dataplane', 'ebpf', 'map-writer.c');

// clang's BPF target has no multiarch directory of its own; linux/bpf.h needs the host's asm/types.h.
const MULTIARCH: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };

/** Compiles the cgroup socket programs (clang -O2 -target bpf); the object's path. */
export function buildSocketsObject(options: BuildOptions = {}): Promise<string> {
  const include = MULTIARCH[process.arch] ? ['-idirafter', `/usr/include/${MULTIARCH[process.arch]}`] : [];
  return cachedBuild('sockets', '.bpf.o', SOCKETS_SOURCE, (output) => ['clang', ['-O2', '-g', '-target', 'bpf', ...include, '-c', SOCKETS_SOURCE, '-o', output]], options);
}

/** Compiles the map writer helper with the system's cc against libbpf; the binary's path. */
export function buildMapWriter(options: BuildOptions = {}): Promise<string> {
  return cachedBuild('map-writer', '', MAP_WRITER_SOURCE, (output) => ['cc', ['-O2', '-o', output, MAP_WRITER_SOURCE, '-lbpf']], options);
}
