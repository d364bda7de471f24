// The byte layouts of the BPF maps in templates/ebpf/sockets.bpf.c, defined once for TypeScript: each
// codec names the C struct it mirrors. Integers are in host order (the kernel's), ports and addresses
// in network order, addresses always 16 bytes (IPv4 as ::ffff:a.b.c.d).
import { endianness } from 'node:os';
import ipaddr from 'ipaddr.js';
import type { L4Protocol } from '../../controlplane/compute/node-rules.js';

if (endianness() !== 'LE') throw new Error('ferry eBPF maps: only little-endian hosts are supported (the map layouts write host-order integers as little-endian)');

/** Turns one C struct into bytes and back. */
export interface Codec<T> {
  size: number;
  encode(value: T): Buffer;
  decode(bytes: Buffer): T;
}

/** A map's name (its pin in the map directory) with its key and value layouts. */
export interface MapLayout<K, V> {
  name: MapName;
  key: Codec<K>;
  value: Codec<V>;
}

export type MapName = 'frontends' | 'groups' | 'slots';

/** What a connect to a frontend meets: an endpoint of its group, ECONNREFUSED, or EPERM (C: VERDICT_*). */
export type FrontendVerdict = 'serve' | 'reject' | 'drop';

export interface FrontendKey { ip: string; port: number; protocol: L4Protocol }
export interface Frontend { group: number; verdict: FrontendVerdict; affinitySeconds: number }
export interface Group { count: number; total: number }
export interface SlotKey { group: number; index: number }
export interface Slot { ip: string; port: number; cumulative: number }

const PROTOCOLS: Record<L4Protocol, number> = { tcp: 6, udp: 17, sctp: 132 };
const VERDICTS: FrontendVerdict[] = ['serve', 'reject', 'drop'];

function writeAddress(bytes: Buffer, offset: number, ip: string): void {
  const parsed = ipaddr.parse(ip);
  const v6 = parsed.kind() === 'ipv4' ? (parsed as ipaddr.IPv4).toIPv4MappedAddress() : (parsed as ipaddr.IPv6);
  Buffer.from(v6.toByteArray()).copy(bytes, offset);
}

function readAddress(bytes: Buffer, offset: number): string {
  const v6 = ipaddr.fromByteArray([...bytes.subarray(offset, offset + 16)]) as ipaddr.IPv6;
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toString();
}

function protocolName(number: number): L4Protocol {
  const name = (Object.keys(PROTOCOLS) as L4Protocol[]).find((key) => PROTOCOLS[key] === number);
  if (!name) throw new Error(`ferry eBPF maps: unknown protocol number ${number}`);
  return name;
}

/** struct frontend_key { __u32 addr[4]; __u16 port; __u8 proto; __u8 pad; } */
export const frontendKey: Codec<FrontendKey> = {
  size: 20,
  encode({ ip, port, protocol }) {
    const bytes = Buffer.alloc(20);
    writeAddress(bytes, 0, ip);
    bytes.writeUInt16BE(port, 16);
    bytes.writeUInt8(PROTOCOLS[protocol], 18);
    return bytes;
  },
  decode: (bytes) => ({ ip: readAddress(bytes, 0), port: bytes.readUInt16BE(16), protocol: protocolName(bytes.readUInt8(18)) }),
};

/** struct frontend { __u32 group; __u8 verdict; __u8 pad[3]; __u32 affinity_seconds; } */
export const frontend: Codec<Frontend> = {
  size: 12,
  encode({ group, verdict, affinitySeconds }) {
    const bytes = Buffer.alloc(12);
    bytes.writeUInt32LE(group, 0);
    bytes.writeUInt8(VERDICTS.indexOf(verdict), 4);
    bytes.writeUInt32LE(affinitySeconds, 8);
    return bytes;
  },
  decode: (bytes) => ({ group: bytes.readUInt32LE(0), verdict: VERDICTS[bytes.readUInt8(4)] ?? 'reject', affinitySeconds: bytes.readUInt32LE(8) }),
};

/** The groups map's key: a __u32 group id. */
export const groupKey: Codec<number> = {
  size: 4,
  encode(id) {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32LE(id, 0);
    return bytes;
  },
  decode: (bytes) => bytes.readUInt32LE(0),
};

/** struct group { __u32 count; __u32 total; } */
export const group: Codec<Group> = {
  size: 8,
  encode({ count, total }) {
    const bytes = Buffer.alloc(8);
    bytes.writeUInt32LE(count, 0);
    bytes.writeUInt32LE(total, 4);
    return bytes;
  },
  decode: (bytes) => ({ count: bytes.readUInt32LE(0), total: bytes.readUInt32LE(4) }),
};

/** struct slot_key { __u32 group; __u32 index; } */
export const slotKey: Codec<SlotKey> = {
  size: 8,
  encode({ group, index }) {
    const bytes = Buffer.alloc(8);
    bytes.writeUInt32LE(group, 0);
    bytes.writeUInt32LE(index, 4);
    return bytes;
  },
  decode: (bytes) => ({ group: bytes.readUInt32LE(0), index: bytes.readUInt32LE(4) }),
};

/** struct slot { __u32 addr[4]; __u16 port; __u16 pad; __u32 cumulative; } */
export const slot: Codec<Slot> = {
  size: 24,
  encode({ ip, port, cumulative }) {
    const bytes = Buffer.alloc(24);
    writeAddress(bytes, 0, ip);
    bytes.writeUInt16BE(port, 16);
    bytes.writeUInt32LE(cumulative, 20);
    return bytes;
  },
  decode: (bytes) => ({ ip: readAddress(bytes, 0), port: bytes.readUInt16BE(16), cumulative: bytes.readUInt32LE(20) }),
};

/** The maps the control plane writes, by pin name. */
export const MAPS = {
  frontends: { name: 'frontends', key: frontendKey, value: frontend },
  groups: { name: 'groups', key: groupKey, value: group },
  slots: { name: 'slots', key: slotKey, value: slot },
} satisfies { [N in MapName]: MapLayout<unknown, unknown> & { name: N } };
