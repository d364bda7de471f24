// A map's entries summed into 64 bits that do not depend on their order, as ferry-map-writer's `digest`
// sums the kernel's (map-writer.c): each entry, its key's bytes then its value's, read as little-endian
// 32-bit words, hashed by murmur3 with two seeds; the two halves are the sums of the hashes, mod 2^32.
// So `diff` compares half a million slots by one line from the helper. Pure.
import type { MapLayout } from './layout.js';

const rotate = (x: number, r: number) => (x << r) | (x >>> (32 - r));

function murmur3(words: Uint32Array, seed: number): number {
  let h = seed;
  for (let i = 0; i < words.length; i++) {
    const k = Math.imul(rotate(Math.imul(words[i]!, 0xcc9e2d51), 15), 0x1b873593);
    h = (Math.imul(rotate(h ^ k, 13), 5) + 0xe6546b64) | 0;
  }
  h ^= words.length * 4;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The entries' count and digest, as the helper prints them (`%08x%08x`: the second seed's sum first). */
export function entriesDigest<K, V>(layout: MapLayout<K, V>, entries: Iterable<readonly [K, V]>): { count: number; digest: string } {
  const size = layout.key.size + layout.value.size;
  if (size % 4) throw new Error(`ferry eBPF: ${layout.name}'s entries are not whole words`);
  const bytes = new Uint8Array(size);
  const words = new Uint32Array(bytes.buffer);
  let low = 0;
  let high = 0;
  let count = 0;
  for (const [key, value] of entries) {
    bytes.set(layout.key.encode(key), 0);
    bytes.set(layout.value.encode(value), layout.key.size);
    low = (low + murmur3(words, 0)) >>> 0;
    high = (high + murmur3(words, 0x9747b28c)) >>> 0;
    count += 1;
  }
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  return { count, digest: `${hex(high)}${hex(low)}` };
}
