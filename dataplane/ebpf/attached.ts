// What the kernel holds of ferry's eBPF backend, found from where the programs are attached (the
// cgroup, the interfaces' tc ingress) and the maps from the programs, so that any ferry process in the
// node's network namespace finds them: pins live on a bpffs, and `ip netns exec` gives each command a
// bpffs of its own. adoptPins pins the maps found that way where this process's loads look for them.
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runChecked, type Runner } from '../runner.js';
import { PACKET_OBJECT_MAPS, SOCKET_HOOKS, SOCKET_OBJECT_MAPS } from './programs.js';

/** A ferry program attached somewhere: a socket hook of the cgroup or a device's ingress. */
export interface AttachedProgram {
  id: number;
  name: string;
  tag: string;
  mapIds: number[];
}

export interface AttachedState {
  /** By hook (connect4, ...). */
  sockets: Map<string, AttachedProgram>;
  /** The packet program by device. */
  devices: Map<string, AttachedProgram>;
}

const json = async <T>(runner: Runner, what: string, args: string[]): Promise<T> => {
  const text = (await runChecked(runner, what, 'bpftool', ['-j', ...args])).trim();
  return (text ? JSON.parse(text) : []) as T;
};

/** Every program the kernel has, by id, from one listing (not one bpftool per program). */
async function programs(runner: Runner): Promise<Map<number, AttachedProgram>> {
  const shown = await json<Array<{ id: number; name: string; tag: string; map_ids?: number[] }>>(runner, 'listing the programs', ['prog', 'show']);
  return new Map(shown.map((found) => [found.id, { id: found.id, name: found.name, tag: found.tag, mapIds: found.map_ids ?? [] }]));
}

/** The program of an attachment, as the listing has it (one loaded meanwhile: read by its id). */
async function program(runner: Runner, id: number, listed: Map<number, AttachedProgram>): Promise<AttachedProgram> {
  const known = listed.get(id);
  if (known) return known;
  const shown = await json<{ id: number; name: string; tag: string; map_ids?: number[] }>(runner, `reading program ${id}`, ['prog', 'show', 'id', String(id)]);
  return { id, name: shown.name, tag: shown.tag, mapIds: shown.map_ids ?? [] };
}

/** ferry's programs at the cgroup (by name ferry_*) and on this namespace's interfaces (tc, ferry_ingress). */
export async function readAttached(runner: Runner, cgroup: string): Promise<AttachedState> {
  const [listed, hooks, filters] = await Promise.all([programs(runner), cgroupPrograms(runner, cgroup), ingressFilters(runner)]);
  return { sockets: await socketAttachments(runner, hooks, listed), devices: await packetAttachments(runner, filters, listed) };
}

type CgroupProgram = { id: number; attach_type: string; name: string };
type TcFilter = { devname: string; kind: string; name?: string; id?: number; prog_id?: number };

const cgroupPrograms = (runner: Runner, cgroup: string) => json<CgroupProgram[]>(runner, `listing ${cgroup}'s programs`, ['cgroup', 'show', cgroup]);

async function ingressFilters(runner: Runner): Promise<TcFilter[]> {
  const [net] = await json<Array<{ tc?: TcFilter[] }>>(runner, 'listing the tc programs', ['net', 'show']);
  return net?.tc ?? [];
}

async function socketAttachments(runner: Runner, hooks: CgroupProgram[], listed: Map<number, AttachedProgram>): Promise<Map<string, AttachedProgram>> {
  const found = new Map<string, AttachedProgram>();
  for (const hook of hooks) {
    const name = hook.name.slice('ferry_'.length);
    if (hook.name.startsWith('ferry_') && (SOCKET_HOOKS as readonly string[]).includes(name)) found.set(name, await program(runner, hook.id, listed));
  }
  return found;
}

async function packetAttachments(runner: Runner, filters: TcFilter[], listed: Map<number, AttachedProgram>): Promise<Map<string, AttachedProgram>> {
  const found = new Map<string, AttachedProgram>();
  for (const filter of filters) {
    const id = filter.prog_id ?? filter.id;
    if (filter.kind === 'clsact/ingress' && /^ferry_ingress\b/.test(filter.name ?? '') && id !== undefined) found.set(filter.devname, await program(runner, id, listed));
  }
  return found;
}

/** ferry's socket programs attached to the cgroup, by hook. */
export async function readSocketAttachments(runner: Runner, cgroup: string): Promise<Map<string, AttachedProgram>> {
  const [listed, hooks] = await Promise.all([programs(runner), cgroupPrograms(runner, cgroup)]);
  return socketAttachments(runner, hooks, listed);
}

/** ferry's packet program on this namespace's interfaces, by device. */
export async function readPacketAttachments(runner: Runner): Promise<Map<string, AttachedProgram>> {
  const [listed, filters] = await Promise.all([programs(runner), ingressFilters(runner)]);
  return packetAttachments(runner, filters, listed);
}

// The kernel keeps 15 characters of a map's name.
const kernelName = (name: string) => name.slice(0, 15);

/**
 * Makes sure the maps of the attached programs are pinned under `pinDir` (maps/ for the socket object's,
 * packet-maps/ for the packet program's own), as loadSocketPrograms and loadPacketProgram look for
 * them: a map already pinned is left alone. Returns whether anything of ferry's was found attached.
 */
export async function adoptPins(runner: Runner, pinDir: string, state: AttachedState): Promise<boolean> {
  const targets = [
    { programs: [...state.sockets.values()], directory: join(pinDir, 'maps'), names: SOCKET_OBJECT_MAPS as readonly string[] },
    // The packet maps from a device's program, or from the socket programs they are bound to (a node with no device).
    { programs: [...state.devices.values(), ...state.sockets.values()], directory: join(pinDir, 'packet-maps'), names: PACKET_OBJECT_MAPS as readonly string[] },
  ];
  if (state.sockets.size === 0 && state.devices.size === 0) return false;
  // Every map's name in one listing, not one bpftool per map.
  const names = new Map((await json<Array<{ id: number; name: string }>>(runner, 'listing the maps', ['map', 'show'])).map((map) => [map.id, map.name]));
  for (const { programs, directory, names: wanted } of targets) {
    const ids = new Set(programs.flatMap((found) => found.mapIds));
    for (const id of ids) {
      const name = names.get(id);
      const full = wanted.find((candidate) => kernelName(candidate) === name);
      if (!full) continue;
      const path = join(directory, full);
      if (await stat(path).then(() => true, () => false)) continue;
      await mkdir(directory, { recursive: true });
      await runChecked(runner, `pinning map ${full}`, 'bpftool', ['map', 'pin', 'id', String(id), path]);
    }
  }
  return true;
}
