// The eBPF backend: socket programs on a cgroup (pods' and the node's own connections), a tc program on
// the interfaces (traffic from outside, through kernel conntrack), their maps written in batches by
// ferry-map-writer, and the companion nftables table. Every full sync reads the maps back and writes
// only what differs, so a restart over unchanged maps writes nothing and the periodic resync repairs
// what someone changed; a partial sync writes the difference from the plan it last wrote.
import { rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { NodeRules } from '../../rules/node-rules.js';
import type { FrontendState } from '../../rules/frontends.js';
import type { PortChanges } from '../../rules/port-changes.js';
import type { ApplyOptions, ApplyOutcome, Backend, BackendOptions, Comparison, EndpointConnections, RenderedRules, RenderUpdate, SyncKind, SyncStart } from '../backend.js';
import { deleteStaleFlows } from '../conntrack.js';
import { runChecked, type Runner } from '../runner.js';
import { reportProblems } from '../structure-error.js';
import { adoptPins, readAttached, readPacketAttachments, readSocketAttachments, type AttachedProgram, type AttachedState } from './attached.js';
import { companionAsKernelWould, companionListingAsKernelWould, prepareCompanion, readCompanion, readCompanionFacts, readCompanionView, removeCompanion, sameCompanion, syncCompanion } from './companion-shell.js';
import { companionChanges, companionScript } from './companion.js';
import { attachNewDevices, listLinks, packetDevices } from './devices.js';
import { ebpfFrontends } from './frontends.js';
import { MAPS } from './layout.js';
import { listNodePlan } from './listing.js';
import { MapWriter } from './map-writer.js';
import { checkCapacity, openNodeMaps, planNode, planOverKernel, slotCount, syncNodePlan, writeNodePlan, type NodeMaps, type NodePlan } from './node-plan.js';
import { planPortChanges } from './port-plan.js';
import { guardTestPlacement, resolveCgroup, resolvePinDir, resolvePlacement, DEFAULT_BPF_ROOT, type EbpfPlacement, type ResolvedPlacement } from './placement.js';
import {
  attachPacketProgram, attachSocketPrograms, detachPacketProgram, detachSocketPrograms, forgetEarlierPacketPrograms, loadBoth, missingTools, preparePacketLoad,
  PACKET_OBJECT_MAPS, prepareSocketLoad, SOCKET_HOOKS, type PacketProgram, type SocketPrograms,
} from './programs.js';
import { holdsPlan } from './in-step.js';
import { readNodeIds, readNodePlan, readNodeSummary } from './read-back.js';
import { abortStaleSockets } from './stale-sockets.js';

/** What an eBPF rendering carries beyond its texts: the rules (the maps are planned against the kernel's) and the placement. */
export interface EbpfRendering {
  rules: NodeRules;
  placement: EbpfPlacement;
  /** The maps' contents for these rules: planned on first use, or set by the sync that wrote them (with the node's addresses). */
  plan: NodePlan;
  /** The companion table's script, printed when first asked for (a partial sync writes only its changed elements). */
  readonly companion: string;
  /** Which rendering this is, and, when rendered as an update, the one it was made from and the ports changed since. */
  id: symbol;
  update?: { from: symbol; changed: PortChanges };
}

const emptyPlan = (): NodePlan => ({
  sockets: { frontends: new Map(), groups: new Map(), ids: new Map() },
  packets: { frontends: new Map(), nodeAddresses: [], masqueradeSources: new Map(), localSources: [], sourceRanges: new Map() },
});

function render(rules: NodeRules, options: BackendOptions = {}, update?: RenderUpdate): RenderedRules {
  const placement = options.ebpf ?? {};
  // Planned when first asked for (render's listing, check): a sync plans over the kernel's maps instead.
  let plan: NodePlan | undefined;
  const attachments = `cgroup ${placement.cgroupRoot ?? 'the cgroup2 mount'}, tc ingress on ${placement.devices?.length ? placement.devices.join(' ') : 'every interface but loopback'}`;
  let companion: string | undefined;
  let listing: string | undefined;
  const texts = [
    // The listing is for people (render, golden files): printed only when asked for, not at every sync.
    { family: 'both' as const, get text() { return (listing ??= listNodePlan(planNode(rules, []), { node: rules.node, attachments, addressesKnown: false })); } },
    { family: 'both' as const, get text() { return (companion ??= companionScript(rules)); } },
  ];
  return {
    backend: 'ebpf',
    texts,
    ebpf: {
      rules, placement, id: Symbol('ebpf rendering'), ...(update?.previous.ebpf ? { update: { from: update.previous.ebpf.id, changed: update.changed } } : {}),
      get companion() {
        return (companion ??= companionScript(rules));
      },
      get plan() {
        return (plan ??= planNode(rules, []));
      },
      set plan(written: NodePlan) {
        plan = written;
      },
    },
  };
}

function rendering(rendered: RenderedRules): EbpfRendering {
  if (!rendered.ebpf) throw new Error('ferry eBPF: rules rendered by another backend');
  return rendered.ebpf;
}

/** Every frontend that serves points at a group with endpoints: what the programs rely on. */
function checkPlan(plan: NodePlan): void {
  const problems: string[] = [];
  const check = (where: string, group: number) => {
    if (!plan.sockets.groups.get(group)?.length) problems.push(`${where} points at group ${group}, which has no endpoints`);
  };
  for (const [id, [, value]] of plan.sockets.frontends) if (value.verdict === 'serve') check(`socket frontend ${id}`, value.group);
  for (const [id, [, value]] of plan.packets.frontends) {
    if (value.verdict === 'serve') check(`packet frontend ${id}`, value.group);
    if (value.localSourceGroup) check(`packet frontend ${id} (local sources)`, value.localSourceGroup);
  }
  reportProblems('ebpf', problems);
}

/** The node's own addresses (global scope), where node ports answer and masquerading takes its source. */
async function nodeAddresses(runner: Runner): Promise<string[]> {
  const links = JSON.parse(await runChecked(runner, 'listing the node\'s addresses', 'ip', ['-j', 'address', 'show'])) as Array<{ addr_info?: Array<{ local: string; scope: string }> }>;
  return links.flatMap((link) => (link.addr_info ?? []).filter((info) => info.scope === 'global').map((info) => info.local));
}

/** What the last full sync in this process set up, for the partial syncs after it; by pin directory. */
interface Session {
  placement: ResolvedPlacement;
  pinDir: string;
  addresses: string[];
  /** What the maps hold: partial syncs update it in place. */
  plan: NodePlan;
  /** The companion script loaded last; undefined once a partial sync changed its elements. */
  companion: string | undefined;
  devices: Set<string>;
  packetProgram: PacketProgram;
  /** The next group id: above every id used since the full sync, so that no new group lands on old slots. */
  nextGroupId: number;
  /** The rendering whose plan the maps hold: a partial sync by ports starts only from it. */
  written: symbol;
  /** The helper partial syncs write through: the full sync's, kept between syncs (a failed sync ends the session and it). */
  writer: { writer: MapWriter; maps: NodeMaps };
  /** The slots the plan holds, kept as partial syncs change it (summing them is a walk of every group). */
  slots: number;
}
const sessions = new Map<string, Session>();
const sessionKey = (placement: EbpfPlacement) => JSON.stringify([placement.cgroupRoot, placement.bpfRoot ?? DEFAULT_BPF_ROOT, placement.devices]);

const sameMaps = (a: number[], b: number[]) => a.length === b.length && [...a].sort().every((id, index) => id === [...b].sort()[index]);
const same = (held: AttachedProgram | undefined, loaded: AttachedProgram) => held !== undefined && held.tag === loaded.tag && sameMaps(held.mapIds, loaded.mapIds);

type ShownProgram = { id: number; name: string; tag: string; map_ids?: number[]; pinned?: string[] };
const asAttached = (shown: ShownProgram): AttachedProgram => ({ id: shown.id, name: shown.name, tag: shown.tag, mapIds: shown.map_ids ?? [] });

/** The programs pinned at `paths`: from one listing with pins (`-f`), each one that listing missed read by its pin. */
async function pinnedPrograms(runner: Runner, paths: string[]): Promise<Map<string, AttachedProgram>> {
  const listed = JSON.parse(await runChecked(runner, 'listing the programs', 'bpftool', ['-j', '-f', 'prog', 'show']) || '[]') as ShownProgram[];
  const found = new Map(listed.flatMap((shown) => (shown.pinned ?? []).map((path): [string, AttachedProgram] => [path, asAttached(shown)])));
  await Promise.all(paths.filter((path) => !found.has(path)).map(async (path) => {
    found.set(path, asAttached(JSON.parse(await runChecked(runner, `reading ${path}`, 'bpftool', ['-j', 'prog', 'show', 'pinned', path])) as ShownProgram));
  }));
  return found;
}

/**
 * Attaches what is not attached already: programs of the same tag using the same maps stay (the
 * socket programs just loaded for nothing go). The packet program goes on every device it should be
 * on and comes off the others. Whether anything was attached or detached; the devices that have it.
 */
async function attach(runner: Runner, placement: ResolvedPlacement, sockets: SocketPrograms, packet: PacketProgram, held: AttachedState): Promise<{ changed: boolean; devices: Set<string> }> {
  let changed = false;
  const pinned = await pinnedPrograms(runner, [...SOCKET_HOOKS.map((hook) => sockets.programs[hook]), packet.program]);
  const loaded = SOCKET_HOOKS.map((hook) => pinned.get(sockets.programs[hook])!);
  if (SOCKET_HOOKS.every((hook, index) => same(held.sockets.get(hook), loaded[index]!))) await rm(dirname(sockets.programs.connect4), { recursive: true, force: true });
  else {
    await attachSocketPrograms(sockets, placement.cgroup, runner, new Map(SOCKET_HOOKS.map((hook, index) => [hook, loaded[index]!.id])));
    changed = true;
  }
  const program = pinned.get(packet.program)!;
  const devices = packetDevices(await listLinks(runner), placement.devices);
  let packetAttached = false;
  for (const device of devices) {
    if (same(held.devices.get(device), program)) continue;
    await attachPacketProgram(packet, device, runner);
    packetAttached = true;
  }
  for (const device of held.devices.keys()) {
    if (!devices.includes(device)) changed = (await detachPacketProgram(device, runner)) || changed;
  }
  // The program just loaded stays pinned even where the attached one was kept (same tag, same maps):
  // interfaces that appear later get it. Earlier loads' pins go; attached programs live on regardless.
  await forgetEarlierPacketPrograms(packet);
  return { changed: changed || packetAttached, devices: new Set(devices) };
}

/**
 * Binds the packet program's maps to a socket program, so that they live, and can be found, while the
 * socket programs are attached, though no device holds the packet program (a node with no interface
 * but loopback) and no pin outlives this process (`ip netns exec` mounts a bpffs of its own).
 */
async function bindPacketMaps(writer: MapWriter, sockets: SocketPrograms, packet: PacketProgram): Promise<void> {
  const directory = dirname(packet.maps.packet_frontends);
  await Promise.all(PACKET_OBJECT_MAPS.map((name) => writer.bind(sockets.programs.connect4, join(directory, name))));
}

/** What a full sync does before it needs the rules: the placement found, the programs loading, the helpers starting. */
interface Prepared {
  placement: ResolvedPlacement;
  held: AttachedState;
  loaded: Promise<[SocketPrograms, PacketProgram]>;
  addresses: Promise<string[]>;
  writer: Promise<MapWriter>;
}

/**
 * The programs found from their attach points (pins adopted) and loaded over the maps they use, the
 * node's addresses read, the map writer started: nothing of it depends on the rules, nor changes what
 * the datapath does (loading and pinning attach nothing, write no map entry).
 */
async function prepare(runner: Runner, requested: EbpfPlacement): Promise<Prepared> {
  const addresses = running(nodeAddresses(runner));
  // The writer stays open for the partial syncs after the sync (idle, it lets the process exit).
  const writer = running(MapWriter.start());
  const tools = running(missingTools({ runner }));
  try {
    const cgroup = await resolveCgroup(runner, requested.cgroupRoot);
    const [held, pinDir] = await Promise.all([readAttached(runner, cgroup), resolvePinDir(runner, requested.bpfRoot)]);
    const placement = { cgroup, pinDir, devices: requested.devices };
    await adoptPins(runner, pinDir, held);
    const [socketLoad, packetLoad] = await Promise.all([prepareSocketLoad({ pinDir, cgroup, runner, tools }), preparePacketLoad(pinDir, { runner })]);
    // bpftool loads both objects (one batch) while this process goes on (planning, or computing the rules).
    return { placement, held, loaded: running(loadBoth(socketLoad, packetLoad, runner)), addresses, writer };
  } catch (error) {
    await writer.then((started) => started.close(), () => undefined);
    throw error;
  }
}

/**
 * Preparations started ahead of a first sync (startSync), by placement, with the runner they run
 * through (its network namespace): the next full sync there takes its one up.
 */
const preparations = new Map<string, { runner: Runner; started: Promise<Prepared> }>();

/**
 * Starts the next full sync's preparation now, so that it runs while the caller computes the rules.
 * `discard` undoes one that no sync took up (the programs it loaded are unpinned, its writer stopped).
 */
function startSync(runner: Runner, options: BackendOptions = {}): SyncStart {
  const key = sessionKey(options.ebpf ?? {});
  const held = preparations.get(key);
  // One through another runner (another namespace) is undone first: two loads must not share the pins.
  const preparation = held?.runner === runner ? held : { runner, started: running(undo(held).then(() => prepare(runner, options.ebpf ?? {}))) };
  preparations.set(key, preparation);
  return {
    discard: async () => {
      if (preparations.get(key) !== preparation) return;
      preparations.delete(key);
      await undo(preparation);
    },
  };
}

/** Undoes a preparation no sync took up (none: nothing): its writer stopped, the programs it loaded unpinned. */
async function undo(preparation: { started: Promise<Prepared> } | undefined): Promise<void> {
  const prepared = await preparation?.started.catch(() => undefined);
  if (!prepared) return;
  await prepared.writer.then((writer) => writer.close(), () => undefined);
  const loaded = await prepared.loaded.catch(() => undefined);
  if (loaded) for (const directory of [dirname(loaded[0].programs.connect4), dirname(loaded[1].program)]) await rm(directory, { recursive: true, force: true });
}

/** The preparation startSync made for this placement through this runner, or a new one. */
function takePrepared(runner: Runner, requested: EbpfPlacement): Promise<Prepared> {
  const key = sessionKey(requested);
  const held = preparations.get(key);
  preparations.delete(key);
  return held?.runner === runner ? held.started : undo(held).then(() => prepare(runner, requested));
}

/**
 * A full sync: prepared (the programs loaded over the maps they use), the maps read back and only
 * their differences written, then attachments and the companion table.
 */
async function sync(runner: Runner, rendered: RenderedRules, options: Omit<ApplyOptions, 'backend'> = {}): Promise<Omit<ApplyOutcome, 'rendered'>> {
  const { rules, placement: requested, companion } = rendering(rendered);
  const preparing = takePrepared(runner, requested);
  // The companion table loaded, or checked by the kernel in a throwaway namespace, while the programs
  // load: one it refuses stops the sync before any map write or attachment.
  const companionReady = running(prepareCompanion(runner, companion));
  let writer: MapWriter | undefined;
  let prepared: Prepared | undefined;
  let sockets: SocketPrograms, packet: PacketProgram, planned: NodePlan, maps: NodeMaps, entries: Awaited<ReturnType<typeof syncNodePlan>>;
  let attached: Awaited<ReturnType<typeof attach>>, companionWritten: boolean;
  try {
    prepared = await preparing;
    planned = planNode(rules, await prepared.addresses);
    // Both settled before anything fails: no load goes on pinning after a refused companion table.
    const [both, ready] = await settled(prepared.loaded, companionReady);
    [sockets, packet] = both;
    writer = await prepared.writer;
    maps = await openNodeMaps(writer, prepared.placement.pinDir);
    await bindPacketMaps(writer, sockets, packet);
    const reused = sockets.reusedMaps || packet.reusedMaps;
    entries = (reused && await inStep(writer, maps, planned))
      || await syncNodePlan(writer, maps, reused ? (await readNodePlan(writer, maps)).plan : emptyPlan(), planned, checkPlan);
    // The companion table does not depend on the attachments: both at once.
    [attached, companionWritten] = await settled(
      attach(runner, prepared.placement, sockets, packet, prepared.held),
      ready.loaded ? Promise.resolve(true) : syncCompanion(runner, companion, ready.desired, Boolean(options.force)),
    );
  } catch (error) {
    await companionReady.catch(() => undefined);
    await (writer ?? await prepared?.writer.catch(() => undefined))?.close();
    throw error;
  }
  const { plan } = entries;
  const { placement } = prepared;
  await endSession(requested);
  writer.keepIdle();
  sessions.set(sessionKey(requested), {
    placement, pinDir: placement.pinDir, addresses: await prepared.addresses, plan, companion, devices: attached.devices, packetProgram: packet,
    nextGroupId: aboveIds(plan, 0), written: rendering(rendered).id, writer: { writer, maps }, slots: slotCount(plan),
  });
  rendering(rendered).plan = plan;
  const changed = entries.written + entries.deleted > 0 || attached.changed || companionWritten;
  return { changed, added: entries.written, removed: entries.deleted };
}

/**
 * A full sync over maps that hold the plan already (a restart, a resync with nothing to repair): told
 * by the map writer's summary, without reading the slots back; the plan takes the kernel's group ids
 * from its frontends, and nothing is written. Undefined when the maps differ, or an id cannot be
 * adopted: then the sync reads everything back.
 */
async function inStep(writer: MapWriter, maps: NodeMaps, planned: NodePlan): Promise<Awaited<ReturnType<typeof syncNodePlan>> | undefined> {
  if (!holdsPlan(await readNodeSummary(writer, maps), planned)) return undefined;
  const kernel = await readNodeIds(writer, maps);
  const plan = planOverKernel(planned, kernel);
  if (![...plan.sockets.groups.keys()].every((id) => kernel.sockets.groups.has(id))) return undefined;
  checkPlan(plan);
  return { plan, written: 0, deleted: 0, replaced: false };
}

/** The lowest id above every group id of the plan and above `floor - 1`. */
function aboveIds(plan: NodePlan, floor: number): number {
  let next = Math.max(floor, 1);
  for (const id of plan.sockets.groups.keys()) if (id >= next) next = id + 1;
  for (const id of plan.sockets.ids.values()) if (id >= next) next = id + 1;
  return next;
}

/** Forgets a session, and stops its helper. */
async function endSession(placement: EbpfPlacement): Promise<void> {
  const session = sessions.get(sessionKey(placement));
  sessions.delete(sessionKey(placement));
  await session?.writer.writer.close();
}

/**
 * Writes the difference from what the last sync of this process wrote; a full sync without one. A
 * rendering made as an update of `previous` writes the entries of its changed ports only (port-plan.ts);
 * any other plans the whole node again and writes what differs.
 */
async function applyChanges(runner: Runner, previous: RenderedRules, next: RenderedRules): Promise<SyncKind> {
  const { rules, placement, update } = rendering(next);
  const session = sessions.get(sessionKey(placement));
  if (!session) {
    await sync(runner, next);
    return 'full';
  }
  try {
    if (update && update.changed !== 'all' && update.from === rendering(previous).id && update.from === session.written) {
      return await applyPortChanges(runner, session, rendering(previous).rules, rules, update.changed, rendering(next));
    }
    return await applyPlanChanges(runner, session, rendering(next));
  } catch (error) {
    // What the maps hold is no longer known for sure: the next sync is a full one, reading them back.
    await endSession(placement);
    throw error;
  }
}

async function applyPortChanges(runner: Runner, session: Session, previous: NodeRules, rules: NodeRules, changed: ReadonlySet<string>, next: EbpfRendering): Promise<SyncKind> {
  // The companion's elements first: a batch the kernel refuses stops the sync before any map write.
  const companion = companionChanges(previous, rules, changed);
  if (companion === undefined) await loadCompanion(runner, session, next.companion);
  else if (companion) await runChecked(runner, 'updating the eBPF companion table', 'nft', ['-f', '-'], companion);
  if (companion) session.companion = undefined;
  const change = planPortChanges(session.plan, previous, rules, changed, session.addresses, () => session.nextGroupId++);
  checkPlan(change.after);
  session.slots += slotCount(change.after) - slotCount(change.before);
  checkCapacity(session.writer.maps, session.plan, session.slots);
  const entries = await writeNodePlan(session.writer.writer, session.writer.maps, change.before, change.after);
  next.plan = session.plan;
  session.written = next.id;
  return entries.written + entries.deleted > 0 || companion !== '' ? 'partial' : 'unchanged';
}

async function applyPlanChanges(runner: Runner, session: Session, next: EbpfRendering): Promise<SyncKind> {
  const plan = planNode(next.rules, session.addresses, session.plan.sockets);
  checkPlan(plan);
  const companionChanged = next.companion !== session.companion;
  // As in a full sync: a companion table the kernel refuses stops this one before any write.
  if (companionChanged) await companionAsKernelWould(runner, next.companion);
  const entries = await writeNodePlan(session.writer.writer, session.writer.maps, session.plan, plan);
  session.plan = plan;
  session.slots = slotCount(plan);
  session.written = next.id;
  session.nextGroupId = aboveIds(plan, session.nextGroupId);
  next.plan = plan;
  if (companionChanged) await loadCompanion(runner, session, next.companion);
  return entries.written + entries.deleted > 0 || companionChanged ? 'partial' : 'unchanged';
}

async function loadCompanion(runner: Runner, session: Session, companion: string): Promise<void> {
  await runChecked(runner, 'loading the eBPF companion table', 'nft', ['-f', '-'], companion);
  session.companion = companion;
}

/** Both sides in the listing's words: the maps read back and attachments found, and the plan for this node now. */
async function compare(runner: Runner, rendered: RenderedRules): Promise<Comparison> {
  const { rules, placement: requested, companion } = rendering(rendered);
  const placement = await resolvePlacement(runner, requested);
  // The tools run side by side (the companion loaded into a throwaway namespace, the maps dumped),
  // and the desired side is planned and listed while they run.
  const companions = running(Promise.all([companionListingAsKernelWould(runner, companion), readCompanion(runner)]));
  const [held, addresses, links] = await Promise.all([readAttached(runner, placement.cgroup), nodeAddresses(runner), listLinks(runner)]);
  const maps = running(readMaps(runner, placement, held, rules.node));
  const desiredAttachments = { cgroup: placement.cgroup, hooks: [...SOCKET_HOOKS], devices: packetDevices(links, placement.devices) };
  const plan = planNode(rules, addresses);
  checkPlan(plan);
  const desiredMaps = listNodePlan(plan, { node: rules.node, attachments: desiredAttachments, addressesKnown: true });
  const [[desiredCompanion, currentCompanion], currentMaps] = await Promise.all([companions, maps]);
  return { current: currentMaps + currentCompanion, desired: desiredMaps + desiredCompanion };
}

/**
 * What `ferry diff` reads of the kernel: the attachments, the node's addresses and interfaces, the
 * maps as a summary (the map writer sums what the frontends serve; no entry is printed) and the
 * companion table's digests (its listing where nft-digest cannot be built).
 */
export async function readKernel(runner: Runner, requested: EbpfPlacement) {
  const placement = await resolvePlacement(runner, requested);
  const companion = running(readCompanionView(runner));
  // Through the pins while bpftool lists the attachments, where this process sees the pins.
  const pinned = running(readPinned(placement.pinDir, readNodeSummary));
  const [held, addresses, links] = await Promise.all([readAttached(runner, placement.cgroup), nodeAddresses(runner), listLinks(runner)]);
  const summary = (await pinned) ?? await readHeld(runner, placement, held, readNodeSummary);
  return { placement, held, addresses, links, summary, companion: await companion };
}

/**
 * `ferry diff`: the kernel read (readKernel) and compared with the plan made from scratch and the
 * companion table once loaded in a throwaway namespace; the same, and both sides are one line. Only when
 * something differs are both sides listed whole (compare).
 */
async function diff(runner: Runner, rendered: RenderedRules): Promise<Comparison> {
  const { rules, placement: requested, companion } = rendering(rendered);
  const desiredCompanion = running(companionAsKernelWould(runner, companion));
  const { placement, held, addresses, links, summary, companion: currentCompanion } = await readKernel(runner, requested);
  const devices = (names: Iterable<string>) => [...names].sort().join(' ');
  const attached = SOCKET_HOOKS.every((hook) => held.sockets.has(hook)) && devices(held.devices.keys()) === devices(packetDevices(links, placement.devices));
  if (summary && attached && sameCompanion(currentCompanion, await desiredCompanion)) {
    const plan = planNode(rules, addresses);
    checkPlan(plan);
    if (holdsPlan(summary, plan)) {
      const inStep = `# ferry eBPF maps for node ${rules.node}: as planned (${summary.sockets.count} socket and ${summary.packets.count} packet frontends, ${summary.slots} slots), attached, companion table the same\n`;
      return { current: inStep, desired: inStep };
    }
  }
  return compare(runner, rendered);
}

/** Both results once both promises settled; the first rejection (of `a`, then of `b`) if any. */
async function settled<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [first, second] = await Promise.allSettled([a, b]);
  if (first.status === 'rejected') throw first.reason;
  if (second.status === 'rejected') throw second.reason;
  return [first.value, second.value];
}

/** A promise awaited later: its failure is reported where it is awaited, not as an unhandled rejection meanwhile. */
function running<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/** The maps and attachments ferry left, read back and listed; empty when it left no pins. */
async function readMaps(runner: Runner, placement: ResolvedPlacement, held: AttachedState, node: string): Promise<string> {
  const read = await readHeld(runner, placement, held, readNodePlan);
  if (!read) return '';
  const attachments = { cgroup: placement.cgroup, hooks: SOCKET_HOOKS.filter((hook) => held.sockets.has(hook)), devices: [...held.devices.keys()] };
  return listNodePlan(read.plan, { node, attachments, addressesKnown: true, brokenGroups: read.brokenGroups });
}

/**
 * The maps read by `read` through the pins this process sees, when both map directories have them;
 * undefined otherwise (readHeld finds them from the programs first).
 */
async function readPinned<T>(pinDir: string, read: (writer: MapWriter, maps: NodeMaps) => Promise<T>): Promise<T | undefined> {
  const pins = await Promise.all([join(pinDir, 'maps', 'frontends'), join(pinDir, 'packet-maps', 'packet_frontends')].map((path) => stat(path).then(() => true, () => false)));
  if (!pins.every(Boolean)) return undefined;
  const writer = await MapWriter.start();
  try {
    return await read(writer, await openNodeMaps(writer, pinDir));
  } finally {
    await writer.close();
  }
}

/** The maps ferry left, found from its programs, read back by `read`; undefined when it left no pins. */
async function readHeld<T>(runner: Runner, placement: ResolvedPlacement, held: AttachedState, read: (writer: MapWriter, maps: NodeMaps) => Promise<T>): Promise<T | undefined> {
  if (!(await adoptPins(runner, placement.pinDir, held))) return undefined;
  const writer = await MapWriter.start();
  try {
    // The packet maps are found from a device's program or, on no device, from their pins if this process sees them.
    const packets = held.devices.size > 0 || await stat(join(placement.pinDir, 'packet-maps', 'packet_frontends')).then(() => true, () => false);
    return await read(writer, await openNodeMaps(writer, placement.pinDir, { packets }));
  } finally {
    await writer.close();
  }
}

/** The frontends the maps hold now (none without ferry's pins); cluster IPs from the companion table. */
async function frontends(runner: Runner, options: BackendOptions = {}): Promise<FrontendState> {
  const placement = await resolvePlacement(runner, options.ebpf ?? {});
  const held = await readAttached(runner, placement.cgroup);
  const [read, companion] = await Promise.all([readHeld(runner, placement, held, readNodePlan), readCompanionFacts(runner)]);
  return read ? ebpfFrontends(read.plan, companion) : { families: [], frontends: [] };
}

/**
 * Detaches ferry's programs from the cgroup and from every interface of the namespace, removes the
 * companion table and the pins. A machine without cgroup2, bpftool or nft has nothing of it.
 */
async function cleanup(runner: Runner, options: BackendOptions = {}): Promise<void> {
  const placement = options.ebpf ?? {};
  const detach = async () => {
    const cgroup = await resolveCgroup(runner, placement.cgroupRoot).catch(() => undefined);
    if (cgroup && (await readSocketAttachments(runner, cgroup).catch(() => new Map())).size) await detachSocketPrograms(cgroup, runner);
    for (const device of (await readPacketAttachments(runner).catch(() => new Map())).keys()) await detachPacketProgram(device, runner);
  };
  // The companion table's removal waits for nft's cache of every table: it runs beside the detaching.
  await Promise.all([detach(), removeCompanion(runner)]);
  try {
    guardTestPlacement(placement.bpfRoot, '--bpf-root');
    await rm(placement.bpfRoot ?? DEFAULT_BPF_ROOT, { recursive: true, force: true });
  } catch {
    // Not a directory one may remove under test, or busy: nothing of ferry's to remove there.
  }
  await endSession(placement);
}

/**
 * The check on a printed listing (golden files): every frontend that serves lists endpoints. The
 * companion script needs none of ferry's own: it has no jumps but to its one reject chain.
 */
function checkText(text: string): void {
  if (!text.startsWith('# ferry eBPF maps')) return;
  const problems = text.split('\n').filter((line) => / serve .*-> (no endpoints|group \d+ \()/.test(line) || / serve( affinity \d+s)?$/.test(line));
  reportProblems('ebpf', problems.map((line) => `a frontend that serves has no endpoints: ${line.trim()}`));
}

/** The socket path's live TCP connections per endpoint (the sock_ops program's counts), once a sync set the programs up. */
async function balancedSockets(_runner: Runner, rendered: RenderedRules): Promise<EndpointConnections[]> {
  const session = sessions.get(sessionKey(rendering(rendered).placement));
  if (!session) return [];
  const writer = await MapWriter.start();
  try {
    const counts = await writer.dump(await writer.open(MAPS.endpoint_connections, join(session.pinDir, 'maps', 'endpoint_connections')));
    return counts.filter(([, connections]) => connections > 0).map(([key, connections]) => ({ protocol: key.protocol, ip: key.ip, port: key.port, connections }));
  } finally {
    await writer.close();
  }
}

export const ebpfBackend: Backend = {
  render,
  startSync,
  check: (rendered) => checkPlan(rendering(rendered).plan),
  checkText,
  apply: async (runner, rendered) => {
    await sync(runner, rendered);
  },
  applyChanges,
  reassert: async (runner, rendered) => {
    await sync(runner, rendered);
  },
  applyIfChanged: async (runner, rules, options) => {
    const rendered = render(rules, options.backend);
    return { ...await sync(runner, rendered, options), rendered };
  },
  stampedAs: async () => false,
  compare,
  diff,
  cleanup,
  // The packet path's flows are conntrack entries; the socket path's are connected sockets.
  clearStaleFlows: async (runner, flows, rendered) => {
    await deleteStaleFlows(runner, flows);
    const session = sessions.get(sessionKey(rendering(rendered).placement));
    if (session) await abortStaleSockets(runner, flows, session.placement.cgroup);
  },
  balancedSockets,
  // Between syncs: interfaces that appeared are served within the agent's next look.
  refresh: async (runner, rendered) => {
    const session = sessions.get(sessionKey(rendering(rendered).placement));
    if (!session) return [];
    const attached = await attachNewDevices(session.packetProgram, session.devices, runner, session.placement.devices);
    return attached.map((device) => `the packet program attached to ${device}, an interface that appeared`);
  },
  // Map entries per family: frontends of both paths and the slots of their groups.
  frontends,
  ruleCounts: (rendered) => {
    const { plan } = rendering(rendered);
    const frontends = [...plan.sockets.frontends.values(), ...plan.packets.frontends.values()].map(([key]) => key.ip);
    const slots = [...plan.sockets.groups.values()].flatMap((endpoints) => endpoints.map((endpoint) => endpoint.ip));
    return (['IPv4', 'IPv6'] as const).map((family) => ({ family, rules: [...frontends, ...slots].filter((ip) => ip.includes(':') === (family === 'IPv6')).length }));
  },
};
