// The byte layouts of the BPF maps in templates/ebpf/ (endpoints.h, sockets.bpf.c, packets.bpf.c), defined once for TypeScript: each
// codec names the C struct it mirrors. Integers are in host order (the kernel's), ports and addresses
// in network order, addresses always 16 bytes (IPv4 as ::ffff:a.b.c.d).
import { endianness } from 'node:os';
import ipaddr from 'ipaddr.js';
import type { L4Protocol } from '../../rules/node-rules.js';

if (endianness() !== 'LE') throw new Error('ferry eBPF maps: only little-endian hosts are supported (the map layouts write host-order integers as little-endian)');

/** Turns one C struct into bytes and back; `write` encodes into zeroed bytes at an offset (many entries in one buffer). */
export interface Codec<T> {
  size: number;
  encode(value: T): Buffer;
  decode(bytes: Buffer): T;
  write?(value: T, bytes: Buffer, offset: number): void;
}

/**
 * A map's name (its pin in the map directory) with its key and value layouts. A `table` is the hash
 * map held as entry 0 of the array of maps pinned under the name (C: FRONTEND_TABLE_ENTRIES), which a
 * full replace swaps whole.
 */
export interface MapLayout<K, V> {
  name: MapName;
  key: Codec<K>;
  value: Codec<V>;
  table?: { maxEntries: number };
}

/** The frontend tables' size (endpoints.h FRONTEND_TABLE_ENTRIES). */
const FRONTEND_TABLE = { maxEntries: 262_144 };

export type MapName = 'frontends' | 'groups' | 'slots' | 'endpoint_connections' | 'packet_frontends' | 'node_addresses' | 'masquerade_sources' | 'local_sources' | 'source_ranges';

/** What a connect to a frontend meets: an endpoint of its group, ECONNREFUSED, or EPERM (C: VERDICT_*). */
export type FrontendVerdict = 'serve' | 'reject' | 'drop';

export interface FrontendKey { ip: string; port: number; protocol: L4Protocol }
export interface Frontend { group: number; verdict: FrontendVerdict; affinitySeconds: number }
export interface Group { count: number; total: number }
export interface SlotKey { group: number; index: number }
export interface Slot { ip: string; port: number; cumulative: number }
/** When the packet program masquerades a new flow (C: MASQUERADE_*): off-cluster unless its source is local. */
export type Masquerade = 'never' | 'always' | 'off-cluster';
/**
 * What the packet program does with a new flow to a frontend (a node port's has the address 0.0.0.0 or
 * `::`); `localSourceGroup`, when not 0, serves sources in the local CIDRs whatever the verdict; a
 * `ranged` one lets only sources in its `source_ranges` through.
 */
export interface PacketFrontend { group: number; verdict: FrontendVerdict; masquerade: Masquerade; ranged: boolean; localSourceGroup: number; affinitySeconds: number }
/** A source range of a ranged frontend. */
export interface RangeKey { frontend: FrontendKey; cidr: string }

const PROTOCOLS: Record<L4Protocol, number> = { tcp: 6, udp: 17, sctp: 132 };
const VERDICTS: FrontendVerdict[] = ['serve', 'reject', 'drop'];

// IPv4 by hand, without allocating: a sync writes a slot per endpoint, and a general parser (ipaddr.js,
// then a regular expression) was most of the cost of 100,000 of them. Addresses reach here validated
// by the model; ipaddr.js still rejects junk.
function writeIPv4(bytes: Buffer, at: number, ip: string): boolean {
  let octet = 0;
  let digits = 0;
  let index = 0;
  for (let i = 0; i <= ip.length; i++) {
    const char = i < ip.length ? ip.charCodeAt(i) : 0x2e;
    if (char === 0x2e) {
      if (digits === 0 || octet > 255 || index > 3) return false;
      bytes[at + index++] = octet;
      octet = 0;
      digits = 0;
    } else if (char >= 0x30 && char <= 0x39 && digits < 3) {
      octet = octet * 10 + char - 0x30;
      digits += 1;
    } else return false;
  }
  return index === 4;
}

function writeAddress(bytes: Buffer, offset: number, ip: string): void {
  if (writeIPv4(bytes, offset + 12, ip)) {
    bytes.writeUInt16BE(0xffff, offset + 10);
    return;
  }
  if (!ipaddr.IPv6.isValid(ip)) throw new Error(`ferry eBPF maps: ${JSON.stringify(ip)} is not an IP address`);
  Buffer.from(ipaddr.IPv6.parse(ip).toByteArray()).copy(bytes, offset);
}

function readAddress(bytes: Buffer, offset: number): string {
  const mapped = bytes.readUInt32BE(offset) === 0 && bytes.readUInt32BE(offset + 4) === 0 && bytes.readUInt32BE(offset + 8) === 0xffff;
  if (mapped) return `${bytes[offset + 12]}.${bytes[offset + 13]}.${bytes[offset + 14]}.${bytes[offset + 15]}`;
  return (ipaddr.fromByteArray([...bytes.subarray(offset, offset + 16)]) as ipaddr.IPv6).toString();
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
export const slotKey: Required<Codec<SlotKey>> = {
  size: 8,
  write({ group, index }, bytes, offset) {
    bytes.writeUInt32LE(group, offset);
    bytes.writeUInt32LE(index, offset + 4);
  },
  encode(value) {
    const bytes = Buffer.alloc(8);
    slotKey.write(value, bytes, 0);
    return bytes;
  },
  decode: (bytes) => ({ group: bytes.readUInt32LE(0), index: bytes.readUInt32LE(4) }),
};

/** struct slot { __u32 addr[4]; __u16 port; __u16 pad; __u32 cumulative; } */
export const slot: Required<Codec<Slot>> = {
  size: 24,
  write({ ip, port, cumulative }, bytes, offset) {
    writeAddress(bytes, offset, ip);
    bytes.writeUInt16BE(port, offset + 16);
    bytes.writeUInt32LE(cumulative, offset + 20);
  },
  encode(value) {
    const bytes = Buffer.alloc(24);
    slot.write(value, bytes, 0);
    return bytes;
  },
  decode: (bytes) => ({ ip: readAddress(bytes, 0), port: bytes.readUInt16BE(16), cumulative: bytes.readUInt32LE(20) }),
};

const MASQUERADES: Masquerade[] = ['never', 'always', 'off-cluster'];

/** struct packet_frontend { __u32 group; __u8 verdict; __u8 masquerade; __u8 ranged; __u8 pad; __u32 local_source_group; __u32 affinity_seconds; } */
export const packetFrontend: Codec<PacketFrontend> = {
  size: 16,
  encode({ group, verdict, masquerade, ranged, localSourceGroup, affinitySeconds }) {
    const bytes = Buffer.alloc(16);
    bytes.writeUInt32LE(group, 0);
    bytes.writeUInt8(VERDICTS.indexOf(verdict), 4);
    bytes.writeUInt8(MASQUERADES.indexOf(masquerade), 5);
    bytes.writeUInt8(ranged ? 1 : 0, 6);
    bytes.writeUInt32LE(localSourceGroup, 8);
    bytes.writeUInt32LE(affinitySeconds, 12);
    return bytes;
  },
  decode: (bytes) => ({
    group: bytes.readUInt32LE(0), verdict: VERDICTS[bytes.readUInt8(4)] ?? 'reject', masquerade: MASQUERADES[bytes.readUInt8(5)] ?? 'always',
    ranged: bytes.readUInt8(6) === 1, localSourceGroup: bytes.readUInt32LE(8), affinitySeconds: bytes.readUInt32LE(12),
  }),
};

/** struct source_key { __u32 prefixlen; __u32 addr[4]; }: a CIDR, IPv4 prefixes 96 longer as ::ffff:a.b.c.d/96+n. */
export const sourceKey: Codec<string> = {
  size: 20,
  encode(cidr) {
    const [ip, length] = cidr.split('/') as [string, string | undefined];
    const bytes = Buffer.alloc(20);
    writeAddress(bytes, 4, ip);
    const ipv4 = !ip.includes(':');
    bytes.writeUInt32LE(Number(length ?? (ipv4 ? 32 : 128)) + (ipv4 ? 96 : 0), 0);
    return bytes;
  },
  decode(bytes) {
    const ip = readAddress(bytes, 4);
    return `${ip}/${bytes.readUInt32LE(0) - (ip.includes(':') ? 0 : 96)}`;
  },
};

/** struct range_key { __u32 prefixlen; struct frontend_key frontend; __u32 source[4]; }: the frontend's 160 bits, then the range's. */
export const rangeKey: Codec<RangeKey> = {
  size: 40,
  encode({ frontend, cidr }) {
    const bytes = Buffer.alloc(40);
    const source = sourceKey.encode(cidr);
    bytes.writeUInt32LE(160 + source.readUInt32LE(0), 0);
    frontendKey.encode(frontend).copy(bytes, 4);
    source.copy(bytes, 24, 4);
    return bytes;
  },
  decode(bytes) {
    const source = Buffer.alloc(20);
    source.writeUInt32LE(bytes.readUInt32LE(0) - 160, 0);
    bytes.copy(source, 4, 24);
    return { frontend: frontendKey.decode(bytes.subarray(4, 24)), cidr: sourceKey.decode(source) };
  },
};

/** struct node_address { __u32 addr[4]; } */
export const address: Codec<string> = {
  size: 16,
  encode(ip) {
    const bytes = Buffer.alloc(16);
    writeAddress(bytes, 0, ip);
    return bytes;
  },
  decode: (bytes) => readAddress(bytes, 0),
};

/** A __u8 flag: the node_addresses map's value. */
export const flag: Codec<boolean> = {
  size: 1,
  encode: (value) => Buffer.from([value ? 1 : 0]),
  decode: (bytes) => bytes[0] === 1,
};

/** The masquerade_sources map's index: 0 IPv4, 1 IPv6. */
export const familyIndex: Codec<'IPv4' | 'IPv6'> = {
  size: 4,
  encode(family) {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32LE(family === 'IPv6' ? 1 : 0, 0);
    return bytes;
  },
  decode: (bytes) => (bytes.readUInt32LE(0) === 1 ? 'IPv6' : 'IPv4'),
};

/** A __s64 count: the endpoint_connections map's value. */
export const count: Codec<number> = {
  size: 8,
  encode(value) {
    const bytes = Buffer.alloc(8);
    bytes.writeBigInt64LE(BigInt(value), 0);
    return bytes;
  },
  decode: (bytes) => Number(bytes.readBigInt64LE(0)),
};

/** The maps the control plane writes or reads, by pin name. */
export const MAPS = {
  frontends: { name: 'frontends', key: frontendKey, value: frontend, table: FRONTEND_TABLE },
  groups: { name: 'groups', key: groupKey, value: group },
  slots: { name: 'slots', key: slotKey, value: slot },
  endpoint_connections: { name: 'endpoint_connections', key: frontendKey, value: count },
  packet_frontends: { name: 'packet_frontends', key: frontendKey, value: packetFrontend, table: FRONTEND_TABLE },
  node_addresses: { name: 'node_addresses', key: address, value: flag },
  masquerade_sources: { name: 'masquerade_sources', key: familyIndex, value: address },
  local_sources: { name: 'local_sources', key: sourceKey, value: flag },
  source_ranges: { name: 'source_ranges', key: rangeKey, value: flag },
} satisfies { [N in MapName]: MapLayout<unknown, unknown> & { name: N } };
