// A UDP flow whose conntrack entry must go: what compute finds after a change and the dataplane deletes.
import type { IPFamily } from '../controlplane/model/types.js';

/** A conntrack -D filter: entries to `origDst` (or to `origPortDst` on any local address), NATed to `dstNat` if set. */
export interface StaleFlow {
  family: IPFamily;
  origDst?: string;
  origPortDst?: number;
  dstNat?: string;
}
