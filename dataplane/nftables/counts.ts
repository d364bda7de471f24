// How many times each key is held, as a value that no update changes (a rendering keeps its counts
// while the next one is made from it). Counting N keys costs a native Map: Immutable's own build costs
// five times that, and it was the whole of ferry's time for the first change after a full sync at
// 10,000 Services. Later counts share that Map and keep what changed in a persistent overlay, folded into
// a new Map once it has grown to half the base, so an update costs what it changed (amortized).
import { Map as ImmutableMap } from 'immutable';

export class Counts {
  /** The counts of the keys, each as often as it occurs. */
  static of(keys: Iterable<string>): Counts {
    const base = new Map<string, number>();
    for (const key of keys) base.set(key, (base.get(key) ?? 0) + 1);
    return new Counts(base, ImmutableMap(), base.size);
  }

  /** `size`: how many keys are held (count above 0). The overlay holds 0 for a key the base holds no more. */
  private constructor(private readonly base: ReadonlyMap<string, number>, private readonly overlay: ImmutableMap<string, number>, readonly size: number) {}

  get(key: string): number {
    return this.overlay.get(key) ?? this.base.get(key) ?? 0;
  }

  has(key: string): boolean {
    return this.get(key) > 0;
  }

  /** The keys held. */
  *keys(): Generator<string> {
    for (const [key, count] of this.overlay) if (count > 0) yield key;
    for (const key of this.base.keys()) if (!this.overlay.has(key)) yield key;
  }

  /** These counts with each delta added to its key's count; these stay as they are. */
  with(deltas: Iterable<readonly [string, number]>): Counts {
    let size = this.size;
    const overlay = this.overlay.withMutations((changes) => {
      for (const [key, delta] of deltas) {
        const before = changes.get(key) ?? this.base.get(key) ?? 0;
        const after = before + delta;
        if (after < 0) throw new Error(`ferry: ${key} counted below zero`);
        size += Number(after > 0) - Number(before > 0);
        changes.set(key, after);
      }
    });
    if (overlay.size <= this.base.size / 2 + 64) return new Counts(this.base, overlay, size);
    const base = new Map(this.base);
    for (const [key, count] of overlay) {
      if (count > 0) base.set(key, count);
      else base.delete(key);
    }
    return new Counts(base, ImmutableMap(), size);
  }
}
