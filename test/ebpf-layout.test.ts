import test from 'ava';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { frontendKey, slot } from '../dataplane/ebpf/layout.js';

// What the programs read: 16 bytes, IPv4 as ::ffff:a.b.c.d (the model refuses IPv4-mapped IPv6 addresses).
const expectedBytes = (ip: string) => Buffer.from((ipaddr.parse(ip).kind() === 'ipv4' ? (ipaddr.parse(ip) as ipaddr.IPv4).toIPv4MappedAddress() : ipaddr.parse(ip)).toByteArray());

test('ebpf layout: every address is written as the 16 bytes the programs read, and read back as it was', (t) => {
  fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.ipV6().map((ip) => ipaddr.IPv6.parse(ip)).filter((ip) => !ip.isIPv4MappedAddress()).map((ip) => ip.toString())), fc.integer({ min: 1, max: 65535 }), (ip, port) => {
    const bytes = slot.encode({ ip, port, cumulative: 7 });
    t.deepEqual(bytes.subarray(0, 16), expectedBytes(ip), ip);
    t.deepEqual(slot.decode(bytes), { ip, port, cumulative: 7 });
    t.deepEqual(frontendKey.decode(frontendKey.encode({ ip, port, protocol: 'udp' })), { ip, port, protocol: 'udp' });
  }), { numRuns: 2000 });
});

test('ebpf layout: what is not an address is refused, never written as some other one', (t) => {
  for (const junk of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.1000', '1..2.3', '.1.2.3', '1.2.3.', 'a.b.c.d', '1.2.3.4 ', '::g', '10.0.0.1/32']) {
    t.throws(() => slot.encode({ ip: junk, port: 80, cumulative: 1 }), { message: /is not an IP address/ }, junk);
  }
});
