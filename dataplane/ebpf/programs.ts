// Loading ferry's cgroup socket programs: probe what they need, compile (cached), load and pin them
// with bpftool, attach them to a cgroup, and take all of it away again.
import { mkdir, rm, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execaRunner, runChecked, type Runner } from '../runner.js';
import { buildSocketsObject } from './build.js';
import type { MapName } from './layout.js';

/** The cgroup hooks ferry attaches to; the program for hook H is named ferry_H in sockets.bpf.c. */
export const SOCKET_HOOKS = ['connect4', 'connect6', 'sendmsg4', 'sendmsg6', 'recvmsg4', 'recvmsg6', 'getpeername4', 'getpeername6'] as const;
export type SocketHook = (typeof SOCKET_HOOKS)[number];

const MAP_NAMES: MapName[] = ['frontends', 'groups', 'slots'];
const BPF_FS_MAGIC = 0xcafe4a11;
const CGROUP2_SUPER_MAGIC = 0x63677270;

/** Something the socket programs need is missing; the message names each one and how to get it. */
export class EbpfUnavailableError extends Error {
  constructor(readonly missing: string[]) {
    super(`ferry eBPF backend unavailable: ${missing.join('; ')}`);
  }
}

/** Pinned programs and maps of one load. */
export interface SocketPrograms {
  /** The pin directory: programs under progs/, maps under maps/. */
  pinDir: string;
  programs: Record<SocketHook, string>;
  maps: Record<MapName, string>;
}

async function filesystemType(path: string): Promise<number | undefined> {
  return statfs(path).then((stats) => stats.type, () => undefined);
}

/**
 * Checks clang, bpftool, a bpffs above `pinDir` (bpftool loadall pins only below a directory that is
 * on bpffs; /sys/fs/bpf is not mounted everywhere) and the cgroup2 directory; throws naming every one missing.
 */
export async function probeSockets(options: { pinDir: string; cgroup: string; runner?: Runner }): Promise<void> {
  const runner = options.runner ?? execaRunner;
  const missing: string[] = [];
  for (const [tool, args, hint] of [['clang', ['--version'], 'apt-get install clang llvm libbpf-dev'], ['bpftool', ['version'], 'apt-get install bpftool']] as const) {
    if ((await runner.run(tool, [...args])).exitCode !== 0) missing.push(`${tool} not found (${hint})`);
  }
  if ((await filesystemType(dirname(options.pinDir))) !== BPF_FS_MAGIC) missing.push(`${dirname(options.pinDir)} is not on a bpffs (mount -t bpf bpf ${dirname(options.pinDir)})`);
  if ((await filesystemType(options.cgroup)) !== CGROUP2_SUPER_MAGIC) missing.push(`${options.cgroup} is not a cgroup2 directory`);
  if (missing.length) throw new EbpfUnavailableError(missing);
}

/** Mounts a bpffs on `directory` unless one is there; whether it mounted one (so the caller unmounts it). */
export async function mountBpffs(directory: string, runner: Runner = execaRunner): Promise<boolean> {
  await mkdir(directory, { recursive: true });
  if ((await filesystemType(directory)) === BPF_FS_MAGIC) return false;
  await runChecked(runner, `mounting a bpffs on ${directory}`, 'mount', ['-t', 'bpf', 'bpf', directory]);
  return true;
}

/** Compiles (cached) and loads the socket programs, pinning programs and maps under `pinDir`. */
export async function loadSocketPrograms(options: { pinDir: string; cgroup: string; cacheDir?: string; runner?: Runner }): Promise<SocketPrograms> {
  const runner = options.runner ?? execaRunner;
  await probeSockets(options);
  const object = await buildSocketsObject({ cacheDir: options.cacheDir, runner });
  await mkdir(options.pinDir, { recursive: true });
  const programDir = join(options.pinDir, 'progs');
  const mapDir = join(options.pinDir, 'maps');
  await runChecked(runner, 'loading the socket programs', 'bpftool', ['prog', 'loadall', object, programDir, 'pinmaps', mapDir]);
  return {
    pinDir: options.pinDir,
    programs: Object.fromEntries(SOCKET_HOOKS.map((hook) => [hook, join(programDir, `ferry_${hook}`)])) as Record<SocketHook, string>,
    maps: Object.fromEntries(MAP_NAMES.map((name) => [name, join(mapDir, name)])) as Record<MapName, string>,
  };
}

/**
 * Attaches every socket program to the cgroup (and so to every process in it and below it). `multi`,
 * so that programs others attached to the same hook (systemd's, say) keep running alongside.
 */
export async function attachSocketPrograms(programs: SocketPrograms, cgroup: string, runner: Runner = execaRunner): Promise<void> {
  for (const hook of SOCKET_HOOKS) {
    await runChecked(runner, `attaching ${hook}`, 'bpftool', ['cgroup', 'attach', cgroup, hook, 'pinned', programs.programs[hook], 'multi']);
  }
}

/** Detaches every ferry program from the cgroup, found by name, so it also works after the pins are gone. */
export async function detachSocketPrograms(cgroup: string, runner: Runner = execaRunner): Promise<number> {
  const listing = await runChecked(runner, `listing ${cgroup}'s programs`, 'bpftool', ['-j', 'cgroup', 'show', cgroup]);
  const attached = (listing.trim() ? JSON.parse(listing) : []) as Array<{ id: number; attach_type: string; name: string }>;
  const ours = attached.filter((program) => program.name.startsWith('ferry_'));
  for (const program of ours) {
    await runChecked(runner, `detaching ${program.name}`, 'bpftool', ['cgroup', 'detach', cgroup, program.attach_type, 'id', String(program.id)]);
  }
  return ours.length;
}

/** Removes the pins; the kernel frees programs and maps once nothing (no cgroup, no open fd) holds them. */
export async function unloadSocketPrograms(pinDir: string): Promise<void> {
  await rm(pinDir, { recursive: true, force: true });
}
