// Compiling the eBPF backend's C sources (see ../c-build.ts for the cache).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../controlplane/package-root.js';
import { cachedBuild, type BuildOptions } from '../c-build.js';
import { EbpfUnavailableError } from './unavailable.js';

/** The BPF programs' sources, shipped with the templates; both include endpoints.h. */
export const SOCKETS_SOURCE = join(packageRoot(), 'templates', 'ebpf', 'sockets.bpf.c');
export const PACKETS_SOURCE = join(packageRoot(), 'templates', 'ebpf', 'packets.bpf.c');
const ENDPOINTS_HEADER = join(packageRoot(), 'templates', 'ebpf', 'endpoints.h');
/** The map writer's source. */
export const MAP_WRITER_SOURCE = join(packageRoot(), 'dataplane', 'ebpf', 'map-writer.c');

// clang's BPF target has no multiarch directory of its own; linux/bpf.h needs the host's asm/types.h.
const MULTIARCH: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };

/** Compiles the cgroup socket programs (clang -O2 -target bpf); the object's path. */
export function buildSocketsObject(options: BuildOptions = {}): Promise<string> {
  const include = MULTIARCH[process.arch] ? ['-idirafter', `/usr/include/${MULTIARCH[process.arch]}`] : [];
  return cachedBuild('sockets', '.bpf.o', [SOCKETS_SOURCE, ENDPOINTS_HEADER], (output) => ['clang', ['-O2', '-g', '-target', 'bpf', ...include, '-c', SOCKETS_SOURCE, '-o', output]], options);
}

/**
 * Compiles the tc packet program. It calls the conntrack kfuncs, whose types only the running kernel's
 * BTF has: vmlinux.h is dumped from /sys/kernel/btf/vmlinux next to the output and removed after.
 */
export async function buildPacketsObject(options: BuildOptions = {}): Promise<string> {
  if (!existsSync('/sys/kernel/btf/vmlinux')) throw new EbpfUnavailableError(['/sys/kernel/btf/vmlinux is missing: the packet program needs a kernel with BTF (CONFIG_DEBUG_INFO_BTF)']);
  const script = 'mkdir -p "$1.h" && bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$1.h/vmlinux.h" && clang -O2 -g -target bpf -I "$1.h" -c "$0" -o "$1"; status=$?; rm -rf "$1.h"; exit $status';
  return cachedBuild('packets', '.bpf.o', [PACKETS_SOURCE, ENDPOINTS_HEADER], (output) => ['sh', ['-c', script, PACKETS_SOURCE, output]], options);
}

/** Compiles the map writer helper with the system's cc against libbpf; the binary's path. */
export function buildMapWriter(options: BuildOptions = {}): Promise<string> {
  return cachedBuild('map-writer', '', [MAP_WRITER_SOURCE], (output) => ['cc', ['-O2', '-o', output, MAP_WRITER_SOURCE, '-lbpf']], options);
}
