// Loading ferry's BPF programs: probe what they need, compile (cached), load and pin them with bpftool,
// attach the socket programs to a cgroup and the packet program to interfaces (tc ingress), and take
// all of it away again.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DataplaneError, execaRunner, runChecked, type Runner } from '../runner.js';
import { bpftoolBatch } from './bpftool-batch.js';
import { buildPacketsObject, buildSocketsObject, programObjectsBuilt } from './build.js';
import type { MapName } from './layout.js';
import { isCgroup2, onBpffs } from './placement.js';
import { EbpfUnavailableError } from './unavailable.js';

/** The cgroup hooks ferry attaches to; the program for hook H is named ferry_H in sockets.bpf.c. */
export const SOCKET_HOOKS = ['connect4', 'connect6', 'sendmsg4', 'sendmsg6', 'recvmsg4', 'recvmsg6', 'getpeername4', 'getpeername6', 'sock_ops'] as const;
export type SocketHook = (typeof SOCKET_HOOKS)[number];

const MAP_NAMES: MapName[] = ['frontends', 'groups', 'slots', 'endpoint_connections'];
// Every map of the socket object: a load reuses them all when it finds them pinned, or none.
export const SOCKET_OBJECT_MAPS = ['frontends', 'groups', 'slots', 'reverse', 'affinity', 'udp_flows', 'endpoint_connections'] as const;

/** Pinned programs and maps of one load. */
export interface SocketPrograms {
  /** The pin directory: programs under progs-N/ (one per load), maps under maps/. */
  pinDir: string;
  programs: Record<SocketHook, string>;
  maps: Record<MapName, string>;
  /** Whether the maps of an earlier load were kept, with their entries (else they are new and empty). */
  reusedMaps: boolean;
  /** Program directories of earlier loads: attachSocketPrograms removes them once these programs run. */
  previousProgramDirs: string[];
}

/**
 * Checks clang (unless both objects are built already: prebuilt, as in the image, or cached), bpftool,
 * a bpffs at or above `pinDir` (bpftool loadall pins only below a directory that is on bpffs;
 * /sys/fs/bpf is not mounted everywhere), the cgroup2 directory and the kernel's BTF (the packet
 * program's kfuncs are matched against it); throws naming every one missing.
 */
export async function probeSockets(options: { pinDir: string; cgroup: string; cacheDir?: string; runner?: Runner; tools?: Promise<string[]> }): Promise<void> {
  const missing = (await Promise.all([options.tools ?? missingTools(options), missingPlacement(options)])).flat();
  if (missing.length) throw new EbpfUnavailableError(missing);
}

/** What probeSockets finds missing of the tools and the kernel's BTF: what does not depend on the placement (a sync asks first). */
export async function missingTools(options: { cacheDir?: string; runner?: Runner } = {}): Promise<string[]> {
  const runner = options.runner ?? execaRunner;
  const compiled = await programObjectsBuilt({ cacheDir: options.cacheDir });
  const tools = [...(compiled ? [] : [['clang', ['--version'], 'apt-get install clang llvm libbpf-dev'] as const]), ['bpftool', ['version'], 'apt-get install bpftool'] as const];
  const checks = [
    ...tools.map(async ([tool, args, hint]) => ((await runner.run(tool, [...args])).exitCode === 0 ? undefined : `${tool} not found (${hint})`)),
    existsSync('/sys/kernel/btf/vmlinux') ? undefined : '/sys/kernel/btf/vmlinux is missing: the packet program needs a kernel with BTF (CONFIG_DEBUG_INFO_BTF)',
  ];
  return (await Promise.all(checks)).filter((problem) => problem !== undefined);
}

/** What probeSockets finds missing of the placement: a bpffs for the pins, the cgroup2 directory. */
async function missingPlacement(options: { pinDir: string; cgroup: string }): Promise<string[]> {
  const checks = [
    (async () => ((await onBpffs(options.pinDir)) || (await onBpffs(dirname(options.pinDir))) ? undefined : `${dirname(options.pinDir)} is not on a bpffs (mount -t bpf bpf ${dirname(options.pinDir)})`))(),
    (async () => ((await isCgroup2(options.cgroup)) ? undefined : `${options.cgroup} is not a cgroup2 directory`))(),
  ];
  return (await Promise.all(checks)).filter((problem) => problem !== undefined);
}

/**
 * Compiles (cached) and loads the socket programs under `pinDir`. Maps an earlier load pinned there are
 * reused, entries and all, so that a restarted agent serves from the first moment; when they are not
 * all there, or no longer fit the programs (another layout), the maps start new. bpftool cannot reuse
 * maps and pin maps into the same directory in one load, so a reusing load pins none.
 */
export async function loadSocketPrograms(options: { pinDir: string; cgroup: string; cacheDir?: string; runner?: Runner }): Promise<SocketPrograms> {
  return (await prepareSocketLoad(options)).run();
}

/** A load ready to run: everything done but bpftool's. */
export interface PreparedLoad<T> {
  /** The load as one bpftool command: over the pinned maps where all are there, else pinning new ones. */
  args: string[];
  /** Runs it alone (what a failed batch of it loaded removed first): `args`, and where reusing the maps fails, a load over new ones. */
  run(): Promise<T>;
  /** What `args` loaded, once it succeeded. */
  loaded(): T;
}

/** loadSocketPrograms up to bpftool's load: the probe (`tools`: missingTools's, asked already), the object, the pins looked at. */
export async function prepareSocketLoad(options: { pinDir: string; cgroup: string; cacheDir?: string; runner?: Runner; tools?: Promise<string[]> }): Promise<PreparedLoad<SocketPrograms>> {
  const runner = options.runner ?? execaRunner;
  await probeSockets(options);
  const object = await buildSocketsObject({ cacheDir: options.cacheDir, runner });
  await mkdir(options.pinDir, { recursive: true });
  const previousProgramDirs = (await readdir(options.pinDir)).filter((name) => /^progs(-[0-9a-f]+)?$/.test(name)).map((name) => join(options.pinDir, name));
  const programDir = join(options.pinDir, `progs-${randomBytes(4).toString('hex')}`);
  const mapDir = join(options.pinDir, 'maps');
  return preparedLoad(runner, 'loading the socket programs', ['prog', 'loadall', object, programDir], mapDir, SOCKET_OBJECT_MAPS, programDir, (reusedMaps) => ({
    pinDir: options.pinDir,
    programs: Object.fromEntries(SOCKET_HOOKS.map((hook) => [hook, join(programDir, `ferry_${hook}`)])) as Record<SocketHook, string>,
    maps: socketMapPins(options.pinDir),
    reusedMaps,
    previousProgramDirs,
  }));
}

/**
 * A load with bpftool (`load`: its arguments but the maps') into `programDir`: over the maps `names`
 * pinned in `mapDir` where all are there (a load that pins maps cannot also reuse some), else over new
 * ones pinned there (some pinned but not all: they go). `loaded` says what it gave; `failed` may say
 * a failure in the kernel's words.
 */
async function preparedLoad<T>(
  runner: Runner, what: string, load: string[], mapDir: string, names: readonly string[], programDir: string,
  loaded: (reusedMaps: boolean) => T, failed: (error: unknown) => unknown = (error) => error,
): Promise<PreparedLoad<T>> {
  const pinned = (await Promise.all(names.map((name) => stat(join(mapDir, name)).then(() => true, () => false)))).every(Boolean);
  if (!pinned) await rm(mapDir, { recursive: true, force: true });
  const fresh = [...load, 'pinmaps', mapDir];
  const args = pinned ? [...load, ...names.flatMap((name) => ['map', 'name', name, 'pinned', join(mapDir, name)])] : fresh;
  return {
    args,
    loaded: () => loaded(pinned),
    run: async () => {
      // What a batch that failed may have loaded goes first (loadBoth runs this after one).
      await rm(programDir, { recursive: true, force: true });
      if (pinned && (await runner.run('bpftool', args)).exitCode === 0) return loaded(true);
      await rm(programDir, { recursive: true, force: true });
      await rm(mapDir, { recursive: true, force: true });
      await runChecked(runner, what, 'bpftool', fresh).catch((error: unknown) => {
        throw failed(error);
      });
      return loaded(false);
    },
  };
}

/** Where loadSocketPrograms pins the maps the control plane uses. */
const socketMapPins = (pinDir: string) => Object.fromEntries(MAP_NAMES.map((name) => [name, join(pinDir, 'maps', name)])) as Record<MapName, string>;

/**
 * Both loads in one bpftool (a batch: the packet program's load takes the maps the socket programs'
 * pinned just before), started as this is called, so the caller can work while it runs. Where the
 * batch fails (a pinned map that no longer fits, another layout), each load runs again alone.
 */
export async function loadBoth(sockets: PreparedLoad<SocketPrograms>, packet: PreparedLoad<PacketProgram>, runner: Runner = execaRunner): Promise<[SocketPrograms, PacketProgram]> {
  const batched = await bpftoolBatch(runner, [{ what: 'loading the socket programs', args: sockets.args }, { what: 'loading the packet program', args: packet.args }]).then(() => true, () => false);
  if (batched) return [sockets.loaded(), packet.loaded()];
  const socketPrograms = await sockets.run();
  return [socketPrograms, await packet.run()];
}

/**
 * Attaches every socket program to the cgroup (and so to every process in it and below it), `known`
 * their ids where the caller has them. `multi`,
 * so that programs others attached to the same hook (systemd's, say) keep running alongside. The
 * ferry programs of an earlier load are detached after these are attached, so no connect goes
 * unbalanced meanwhile (for a moment both run: the second sees an endpoint, not a frontend, and lets
 * it be), and their pins removed.
 */
export async function attachSocketPrograms(programs: SocketPrograms, cgroup: string, runner: Runner = execaRunner, known?: Map<SocketHook, number>): Promise<void> {
  // One bpftool for all: the old programs stay until all are on.
  await bpftoolBatch(runner, SOCKET_HOOKS.map((hook) => ({ what: `attaching ${hook}`, args: ['cgroup', 'attach', cgroup, hook, 'pinned', programs.programs[hook], 'multi'] })));
  const ids = await Promise.all(SOCKET_HOOKS.map(async (hook) =>
    known?.get(hook) ?? (JSON.parse(await runChecked(runner, `reading ${hook}'s id`, 'bpftool', ['-j', 'prog', 'show', 'pinned', programs.programs[hook]])) as { id: number }).id));
  await detachSocketPrograms(cgroup, runner, new Set(ids));
  for (const directory of programs.previousProgramDirs) await rm(directory, { recursive: true, force: true });
}

/** Detaches every ferry program (but those in `keep`) from the cgroup, found by name, so it also works after the pins are gone. */
export async function detachSocketPrograms(cgroup: string, runner: Runner = execaRunner, keep: ReadonlySet<number> = new Set()): Promise<number> {
  const listing = await runChecked(runner, `listing ${cgroup}'s programs`, 'bpftool', ['-j', 'cgroup', 'show', cgroup]);
  const attached = (listing.trim() ? JSON.parse(listing) : []) as Array<{ id: number; attach_type: string; name: string }>;
  const ours = attached.filter((program) => program.name.startsWith('ferry_') && !keep.has(program.id));
  if (ours.length) await bpftoolBatch(runner, ours.map((program) => ({ what: `detaching ${program.name}`, args: ['cgroup', 'detach', cgroup, program.attach_type, 'id', String(program.id)] })));
  return ours.length;
}

/** Removes the pins; the kernel frees programs and maps once nothing (no cgroup, no open fd) holds them. */
export async function unloadSocketPrograms(pinDir: string): Promise<void> {
  await rm(pinDir, { recursive: true, force: true });
}

export const PACKET_OBJECT_MAPS = ['packet_frontends', 'node_addresses', 'masquerade_sources', 'local_sources', 'source_ranges', 'packet_affinity'] as const;

/** The packet program and its own maps, pinned; it shares `groups` and `slots` with the socket programs. */
export interface PacketProgram {
  program: string;
  maps: Record<Exclude<(typeof PACKET_OBJECT_MAPS)[number], 'packet_affinity'>, string>;
  /** Whether its own maps of an earlier load were kept, with their entries. */
  reusedMaps: boolean;
  /** Program directories of earlier loads, to remove once this program is attached everywhere. */
  previousProgramDirs: string[];
}

/**
 * Compiles (cached) and loads the tc packet program under the socket programs' `pinDir`, with their
 * pinned `groups` and `slots` maps, so both paths pick endpoints from the same groups. Its own maps of
 * an earlier load are reused as loadSocketPrograms reuses its.
 */
export async function loadPacketProgram(sockets: Pick<SocketPrograms, 'pinDir'>, options: { cacheDir?: string; runner?: Runner } = {}): Promise<PacketProgram> {
  return (await preparePacketLoad(sockets.pinDir, options)).run();
}

/** loadPacketProgram up to bpftool's load, for the socket programs' `pinDir` (their maps are pinned there once they are loaded). */
export async function preparePacketLoad(pinDir: string, options: { cacheDir?: string; runner?: Runner } = {}): Promise<PreparedLoad<PacketProgram>> {
  const runner = options.runner ?? execaRunner;
  const object = await buildPacketsObject({ cacheDir: options.cacheDir, runner });
  await mkdir(pinDir, { recursive: true });
  const previousProgramDirs = (await readdir(pinDir)).filter((name) => /^packet-progs(-[0-9a-f]+)?$/.test(name)).map((name) => join(pinDir, name));
  const programDir = join(pinDir, `packet-progs-${randomBytes(4).toString('hex')}`);
  const mapDir = join(pinDir, 'packet-maps');
  const socketMaps = socketMapPins(pinDir);
  const shared = (['groups', 'slots'] as const).flatMap((name) => ['map', 'name', name, 'pinned', socketMaps[name]]);
  const load = ['prog', 'loadall', object, programDir, 'type', 'classifier', ...shared];
  return preparedLoad(runner, 'loading the packet program', load, mapDir, PACKET_OBJECT_MAPS, programDir, (reusedMaps) => ({
    program: join(programDir, 'ferry_ingress'),
    maps: Object.fromEntries(PACKET_OBJECT_MAPS.filter((name) => name !== 'packet_affinity').map((name) => [name, join(mapDir, name)])) as PacketProgram['maps'],
    reusedMaps,
    previousProgramDirs,
  }), (error) => kfuncsMissing(error) ?? error);
}

/** The verifier's refusal of a kfunc it does not know, said as what the kernel lacks. */
function kfuncsMissing(error: unknown): EbpfUnavailableError | undefined {
  const message = (error as Error).message ?? '';
  if (!/kfunc|bpf_skb_ct_|bpf_ct_/.test(message)) return undefined;
  return new EbpfUnavailableError([`the kernel lacks the conntrack kfuncs the packet program calls (bpf_skb_ct_lookup, bpf_skb_ct_alloc, bpf_ct_set_nat_info, bpf_ct_insert_entry: Linux 6.2 or later, nf_conntrack and nf_nat with BTF): ${message.split('\n').find((line) => /kfunc|bpf_ct|bpf_skb_ct/.test(line))?.trim() ?? ''}`]);
}

/** Removes the pins of earlier packet programs, once this one replaced them on every device (tc `replace`). */
export async function forgetEarlierPacketPrograms(program: PacketProgram): Promise<void> {
  for (const directory of program.previousProgramDirs) await rm(directory, { recursive: true, force: true });
}

// The tc filter priority ferry's ingress filter takes: found and removed by it, others' filters stay.
const INGRESS_PREFERENCE = '49152';

/** Attaches the packet program to `device`'s ingress (a clsact qdisc is added unless there is one). */
export async function attachPacketProgram(program: PacketProgram, device: string, runner: Runner = execaRunner): Promise<void> {
  const qdisc = await runner.run('tc', ['qdisc', 'add', 'dev', device, 'clsact']);
  // A clsact qdisc that is there already answers "File exists" or, on newer kernels, "Exclusivity flag on".
  if (qdisc.exitCode !== 0 && !/File exists|Exclusivity flag on/.test(qdisc.stderr)) throw new DataplaneError(`tc qdisc add dev ${device} clsact`, qdisc, `adding a clsact qdisc to ${device}`);
  await runChecked(runner, `attaching the packet program to ${device}`, 'tc',
    ['filter', 'replace', 'dev', device, 'ingress', 'pref', INGRESS_PREFERENCE, 'handle', '1', 'bpf', 'object-pinned', program.program, 'direct-action']);
}

/** Detaches ferry's ingress filter from `device`; whether there was one. */
export async function detachPacketProgram(device: string, runner: Runner = execaRunner): Promise<boolean> {
  const result = await runner.run('tc', ['filter', 'del', 'dev', device, 'ingress', 'pref', INGRESS_PREFERENCE]);
  return result.exitCode === 0;
}
