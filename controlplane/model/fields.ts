// Typed reads of untrusted API objects: each read names its field path and echoes the bad value.
import ipaddr from 'ipaddr.js';
import { canonicalCIDR, canonicalIP } from './ip.js';
import { printable } from './printable.js';

/** A field failed validation; `field` is its path inside the object, e.g. spec.ports[1].port. */
export class FieldError extends Error {
  /** The message without the path in front. */
  readonly detail: string;

  constructor(readonly field: string, detail: string) {
    super(printable(`${field}: ${detail}`));
    this.detail = printable(detail);
  }
}

const show = (value: unknown) => JSON.stringify(value) ?? String(value);

/**
 * A cursor on one value of an untrusted object, with the path that led to it. The path is spelled out
 * only when something asks for it (an error), not for every field of 100,000 endpoints that read well.
 */
export class Field {
  private spelled: string | undefined;
  private readonly step: string | number;

  /** `path` is the whole path; with `parent`, `step` is this field's key or index below it. */
  constructor(readonly value: unknown, path: string, private readonly parent?: Field, step: string | number = '') {
    this.spelled = parent ? undefined : path;
    this.step = step;
  }

  get path(): string {
    if (this.spelled === undefined) {
      const above = this.parent!.path;
      this.spelled = typeof this.step === 'number' ? `${above}[${this.step}]` : above ? `${above}.${this.step}` : this.step;
    }
    return this.spelled;
  }

  /** The child field `key` (absent children read as undefined). */
  get(key: string): Field {
    const value = isRecord(this.value) ? this.value[key] : undefined;
    return new Field(value, '', this, key);
  }

  get absent(): boolean {
    return this.value === undefined || this.value === null;
  }

  fail(message: string): never {
    throw new FieldError(this.path, `${message}, got ${show(this.value)}`);
  }

  /** Items of a list; an absent list is empty. */
  list(): Field[] {
    if (this.absent) return [];
    if (!Array.isArray(this.value)) this.fail('must be a list');
    return this.value.map((item, index) => new Field(item, '', this, index));
  }

  /** A string, or the fallback when absent. */
  string(fallback?: string): string {
    if (this.absent && fallback !== undefined) return fallback;
    if (typeof this.value !== 'string') this.fail('must be a string');
    return this.value;
  }

  /** One of the allowed strings, or the fallback when absent. */
  oneOf<T extends string>(allowed: readonly T[], fallback?: T): T {
    const value = this.string(fallback);
    if (!(allowed as readonly string[]).includes(value)) this.fail(`must be one of ${allowed.join(', ')}`);
    return value as T;
  }

  /** An integer in [min, max], or the fallback when absent. */
  integer(min: number, max: number, fallback?: number): number {
    if (this.absent && fallback !== undefined) return fallback;
    if (typeof this.value !== 'number' || !Number.isInteger(this.value) || this.value < min || this.value > max) {
      this.fail(`must be an integer from ${min} to ${max}`);
    }
    return this.value;
  }

  boolean(fallback: boolean): boolean {
    if (this.absent) return fallback;
    if (typeof this.value !== 'boolean') this.fail('must be true or false');
    return this.value;
  }

  /** A canonical IP address (surrounding whitespace ignored, as the API server's validation trims it). */
  ip(): string {
    const ip = canonicalIP(this.string().trim());
    return ip ?? this.fail('must be an IP address');
  }

  /** A canonical CIDR (whitespace ignored); `mask` clears host bits as the API server tolerates for some fields. */
  cidr(options: { mask?: boolean } = {}): string {
    const text = this.string().trim();
    const cidr = canonicalCIDR(options.mask ? maskHostBits(text) : text);
    return cidr ?? this.fail('must be a CIDR in network form');
  }
}

/** Whether a value is a plain object (not a list). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Go's net.ParseCIDR accepts '10.1.2.3/8'; the rule needs the network, so mask rather than reject.
function maskHostBits(text: string): string {
  const slash = text.indexOf('/');
  const ip = slash < 0 ? undefined : canonicalIP(text.slice(0, slash));
  if (ip === undefined) return text;
  // From the canonical address: ipaddr.js would read 010.0.0.0 as octal.
  const cidr = `${ip}${text.slice(slash)}`;
  try {
    const [address, bits] = ipaddr.parseCIDR(cidr);
    const network = address.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(cidr)
      : ipaddr.IPv6.networkAddressFromCIDR(cidr);
    return `${network.toString()}/${bits}`;
  } catch {
    return text;
  }
}
