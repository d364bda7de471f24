// The error for a kernel feature or tool the eBPF backend needs and the node lacks: never a silent fallback.

/** Something the eBPF backend needs is missing; the message names each one and how to get it. */
export class EbpfUnavailableError extends Error {
  constructor(readonly missing: string[]) {
    super(`ferry eBPF backend unavailable: ${missing.join('; ')}`);
  }
}
