// Compiling the eBPF backend's C sources (see ../c-build.ts for the cache).
import { join } from 'node:path';
import { packageRoot } from '../../controlplane/package-root.js';
import { builtAlready, cachedBuild, type BuildOptions, type BuildSpec } from '../c-build.js';

/** The BPF programs' sources, shipped with the templates; both include endpoints.h. */
export const SOCKETS_SOURCE = join(packageRoot(), 'templates', 'ebpf', 'sockets.bpf.c');
export const PACKETS_SOURCE = join(packageRoot(), 'templates', 'ebpf', 'packets.bpf.c');
const ENDPOINTS_HEADER = join(packageRoot(), 'templates', 'ebpf', 'endpoints.h');
/** The map writer's source. */
export const MAP_WRITER_SOURCE = join(packageRoot(), 'dataplane', 'ebpf', 'map-writer.c');

// clang's BPF target has no multiarch directory of its own; linux/bpf.h needs the host's asm/types.h.
const MULTIARCH: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };

/** clang -O2 -target bpf of one program source into `output` (UAPI headers only: no kernel's BTF is needed to build). */
function bpfCompile(source: string) {
  const include = MULTIARCH[process.arch] ? ['-idirafter', `/usr/include/${MULTIARCH[process.arch]}`] : [];
  return (output: string): [string, string[]] => ['clang', ['-O2', '-g', '-target', 'bpf', ...include, '-c', source, '-o', output]];
}

const SOCKETS: BuildSpec = { name: 'sockets', extension: '.bpf.o', sources: [SOCKETS_SOURCE, ENDPOINTS_HEADER], command: bpfCompile(SOCKETS_SOURCE) };
const PACKETS: BuildSpec = { name: 'packets', extension: '.bpf.o', sources: [PACKETS_SOURCE, ENDPOINTS_HEADER], command: bpfCompile(PACKETS_SOURCE) };

/** Compiles the cgroup socket programs; the object's path. */
export function buildSocketsObject(options: BuildOptions = {}): Promise<string> {
  return cachedBuild(SOCKETS, options);
}

/**
 * Compiles the tc packet program. Its conntrack kfuncs are declared in the source and matched to the
 * running kernel's BTF by name at load, so a kernel without BTF fails the load, not the build.
 */
export function buildPacketsObject(options: BuildOptions = {}): Promise<string> {
  return cachedBuild(PACKETS, options);
}

/** Whether both program objects are built already (prebuilt or cached): then loading them needs no clang. */
export async function programObjectsBuilt(options: BuildOptions = {}): Promise<boolean> {
  const built = await Promise.all([builtAlready(SOCKETS, options), builtAlready(PACKETS, options)]);
  return built.every(Boolean);
}

/** Compiles the map writer helper with the system's cc against libbpf; the binary's path. */
export function buildMapWriter(options: BuildOptions = {}): Promise<string> {
  return cachedBuild({ name: 'map-writer', extension: '', sources: [MAP_WRITER_SOURCE], command: (output) => ['cc', ['-O2', '-o', output, MAP_WRITER_SOURCE, '-lbpf']] }, options);
}
