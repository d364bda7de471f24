// Loading ferry's BPF programs: probe what they need, compile (cached), load and pin them with bpftool,
// attach the socket programs to a cgroup and the packet program to interfaces (tc ingress), and take
// all of it away again.
import { mkdir, rm, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DataplaneError, execaRunner, runChecked, type Runner } from '../runner.js';
import { buildPacketsObject, buildSocketsObject } from './build.js';
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

/** The packet program and its own maps, pinned; it shares `groups` and `slots` with the socket programs. */
export interface PacketProgram {
  program: string;
  maps: Record<'packet_frontends' | 'node_addresses' | 'masquerade_sources' | 'local_sources' | 'source_ranges', string>;
}

/**
 * Compiles (cached) and loads the tc packet program under `pinDir`, reusing the socket programs'
 * pinned `groups` and `slots` maps, so both paths pick endpoints from the same groups.
 */
export async function loadPacketProgram(sockets: SocketPrograms, options: { cacheDir?: string; runner?: Runner } = {}): Promise<PacketProgram> {
  const runner = options.runner ?? execaRunner;
  const object = await buildPacketsObject({ cacheDir: options.cacheDir, runner });
  const programDir = join(sockets.pinDir, 'packet-progs');
  const mapDir = join(sockets.pinDir, 'packet-maps');
  const reused = (['groups', 'slots'] as const).flatMap((name) => ['map', 'name', name, 'pinned', sockets.maps[name]]);
  await runChecked(runner, 'loading the packet program', 'bpftool', ['prog', 'loadall', object, programDir, 'type', 'classifier', ...reused, 'pinmaps', mapDir]);
  return {
    program: join(programDir, 'ferry_ingress'),
    maps: Object.fromEntries((['packet_frontends', 'node_addresses', 'masquerade_sources', 'local_sources', 'source_ranges'] as const).map((name) => [name, join(mapDir, name)])) as PacketProgram['maps'],
  };
}

// The tc filter priority ferry's ingress filter takes: found and removed by it, others' filters stay.
const INGRESS_PREFERENCE = '49152';

/** Attaches the packet program to `device`'s ingress (a clsact qdisc is added unless there is one). */
export async function attachPacketProgram(program: PacketProgram, device: string, runner: Runner = execaRunner): Promise<void> {
  const qdisc = await runner.run('tc', ['qdisc', 'add', 'dev', device, 'clsact']);
  if (qdisc.exitCode !== 0 && !/File exists/.test(qdisc.stderr)) throw new DataplaneError(`tc qdisc add dev ${device} clsact`, qdisc, `adding a clsact qdisc to ${device}`);
  await runChecked(runner, `attaching the packet program to ${device}`, 'tc',
    ['filter', 'replace', 'dev', device, 'ingress', 'pref', INGRESS_PREFERENCE, 'handle', '1', 'bpf', 'object-pinned', program.program, 'direct-action']);
}

/** Detaches ferry's ingress filter from `device`; whether there was one. */
export async function detachPacketProgram(device: string, runner: Runner = execaRunner): Promise<boolean> {
  const result = await runner.run('tc', ['filter', 'del', 'dev', device, 'ingress', 'pref', INGRESS_PREFERENCE]);
  return result.exitCode === 0;
}
