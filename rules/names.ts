// Stable names both sides derive from NodeRules: the key of an endpoint in a weights map, and the
// hashes that name per-port and per-endpoint chains (the renderers that need them compute them).
import { hash } from 'node:crypto';
import type { EndpointTarget, L4Protocol, ServicePortRules } from './node-rules.js';

/** The key of an endpoint in a weights map: protocol, IP and port, e.g. tcp/10.0.0.1:80 or tcp/[fd00::1]:80. */
export function endpointKey(protocol: L4Protocol, ip: string, port: number): string {
  return `${protocol}/${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
}

/** 16 hex digits of sha256: stable across runs and short enough for iptables' 28-character chain names. */
export function stableHash(text: string): string {
  return hash('sha256', text, 'hex').slice(0, 16).toUpperCase();
}

/**
 * The hash of one endpoint of one Service port, which names its chain. Only the renderers that give an
 * endpoint a chain of its own ask for it (iptables always, nftables under affinity): at 100,000
 * endpoints it is a tenth of a full compute.
 */
export function endpointHash(port: Pick<ServicePortRules, 'id' | 'protocol'>, endpoint: Pick<EndpointTarget, 'ip' | 'port'>): string {
  return stableHash(`${port.id}/${endpointKey(port.protocol, endpoint.ip, endpoint.port)}`);
}
