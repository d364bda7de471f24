// IP and CIDR parsing with ipaddr.js: every address that reaches a rule passes through here.
import ipaddr from 'ipaddr.js';
import type { IPFamily } from './types.js';

// A dotted quad without leading zeros is already canonical: the common case, decided without parsing.
const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const CANONICAL_IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);

// Four decimal numbers: Kubernetes reads leading zeros as decimal (ParseIPSloppy, Go's parser before
// 1.17), and objects stored before the API server refused them may still hold them: 010.001.002.003 is
// 10.1.2.3 (where ipaddr.js, as C's inet_aton, would read octal).
const DOTTED_DECIMAL = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/;

/** The canonical text of an IP address (IPv6 compressed, IPv4-mapped IPv6 rejected), or undefined. */
export function canonicalIP(text: string): string | undefined {
  if (typeof text === 'string' && CANONICAL_IPV4.test(text)) return text;
  if (typeof text !== 'string') return undefined;
  const quad = DOTTED_DECIMAL.exec(text);
  if (quad) {
    const octets = quad.slice(1).map(Number);
    return octets.every((octet) => octet <= 255) ? octets.join('.') : undefined;
  }
  // isValid accepts forms like '10' or '0x0a.1' for IPv4; Kubernetes only accepts dotted quads.
  if (!ipaddr.IPv6.isValid(text) || text.includes('%')) return undefined;
  const address = ipaddr.IPv6.parse(text);
  if (address.isIPv4MappedAddress()) return undefined;
  return address.toString();
}

/** The canonical network form of a CIDR ('10.0.0.0/8'), or undefined when invalid or host bits are set. */
export function canonicalCIDR(text: string): string | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = canonicalIP(text.slice(0, slash));
  const bitsText = text.slice(slash + 1);
  if (ip === undefined || !/^\d{1,3}$/.test(bitsText)) return undefined;
  const bits = Number(bitsText);
  const address = ipaddr.parse(ip);
  if (bits > (address.kind() === 'ipv4' ? 32 : 128)) return undefined;
  const network = address.kind() === 'ipv4'
    ? ipaddr.IPv4.networkAddressFromCIDR(`${ip}/${bits}`)
    : ipaddr.IPv6.networkAddressFromCIDR(`${ip}/${bits}`);
  if (network.toString() !== ip) return undefined;
  return `${ip}/${bits}`;
}

/** The family of a canonical IP or CIDR. */
export function familyOf(ipOrCIDR: string): IPFamily {
  return ipOrCIDR.includes(':') ? 'IPv6' : 'IPv4';
}

/** Whether a canonical IP lies inside a canonical CIDR of the same family. */
export function cidrContains(cidr: string, ip: string): boolean {
  if (familyOf(cidr) !== familyOf(ip)) return false;
  return ipaddr.parse(ip).match(ipaddr.parseCIDR(cidr));
}

/** A string that sorts like the address: family first, then the bytes as fixed-width hex. */
export function addressSortKey(ip: string): string {
  if (ip.includes(':')) return `6${ipaddr.parse(ip).toByteArray().map((byte) => byte.toString(16).padStart(2, '0')).join('')}`;
  // A canonical dotted quad: its 32 bits as 8 hex digits.
  return `4${ipv4Value(ip)!.toString(16).padStart(8, '0')}`;
}

/** The 32-bit value of a dotted quad, read without allocating (sorting reads many); undefined for IPv6. */
export function ipv4Value(ip: string): number | undefined {
  let [value, octet, dots] = [0, 0, 0];
  for (let index = 0; index < ip.length; index++) {
    const code = ip.charCodeAt(index);
    if (code === 46) {
      value = value * 256 + octet;
      octet = 0;
      dots += 1;
    } else if (code >= 48 && code <= 57) {
      octet = octet * 10 + code - 48;
    } else {
      return undefined;
    }
  }
  return dots === 3 ? value * 256 + octet : undefined;
}

/** Numeric address order (10.0.0.9 before 10.0.0.10), IPv4 before IPv6: the order of FamilyRules.clusterIPs. */
export function compareAddresses(a: string, b: string): number {
  const [x, y] = [addressSortKey(a), addressSortKey(b)];
  return x < y ? -1 : x > y ? 1 : 0;
}
