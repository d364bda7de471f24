// Which interfaces the tc packet program goes on, and attaching it to those that are new since the
// last look: `--devices` when given, else every interface but loopback (the agent looks again as it
// runs, so an interface that appears later is served too).
import { runChecked, type Runner } from '../runner.js';
import { attachPacketProgram, type PacketProgram } from './programs.js';

/** One interface as `ip -j link show` lists it. */
export interface Link {
  ifname: string;
  link_type?: string;
}

/** The interfaces to attach to: the requested ones that exist, or every one but loopback. Pure. */
export function packetDevices(links: Link[], requested?: readonly string[]): string[] {
  const present = links.filter((link) => link.link_type !== 'loopback').map((link) => link.ifname);
  return requested?.length ? present.filter((name) => requested.includes(name)) : present;
}

/** The namespace's interfaces. */
export async function listLinks(runner: Runner): Promise<Link[]> {
  return JSON.parse(await runChecked(runner, 'listing the interfaces', 'ip', ['-j', 'link', 'show'])) as Link[];
}

/**
 * Attaches the program to every device of `packetDevices` not in `attached`, and keeps `attached` the
 * set of devices that have it (an interface that went away took its filter with it; `requested`, the
 * agent's `--devices`, does not change while it runs). The devices newly attached.
 */
export async function attachNewDevices(program: PacketProgram, attached: Set<string>, runner: Runner, requested?: readonly string[]): Promise<string[]> {
  const devices = packetDevices(await listLinks(runner), requested);
  for (const name of attached) if (!devices.includes(name)) attached.delete(name);
  const fresh = devices.filter((name) => !attached.has(name));
  for (const device of fresh) {
    await attachPacketProgram(program, device, runner);
    attached.add(device);
  }
  return fresh;
}
