// What a table's frontends serve, summed into 64 bits that do not depend on their order, as
// ferry-map-writer's `served` sums the kernel's (map-writer.c): per frontend a sequence of little-endian
// 32-bit words hashed by murmur3 with two seeds; the two halves are the sums of the hashes, mod 2^32.
// So `diff` compares the frontends with all their slots by one line from the helper. Pure.
import { groupSlots, type WeightedEndpoint } from './groups.js';
import { MAPS, type FrontendKey, type MapLayout } from './layout.js';

const rotate = (x: number, r: number) => (x << r) | (x >>> (32 - r));

const mix = (h: number, k: number) => (Math.imul(rotate(h ^ Math.imul(rotate(Math.imul(k, 0xcc9e2d51), 15), 0x1b873593), 13), 5) + 0xe6546b64) | 0;

function finish(h: number, words: number): number {
  h ^= words * 4;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The little-endian 32-bit words of some bytes (a whole number of words; a Buffer of its own, so aligned). */
const wordsOf = (bytes: Buffer) => new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);

// map-writer.c's markers for a group or a slot a frontend leads to that is missing.
const MISSING_GROUP = 0xffffffff;

/**
 * What a table's frontends serve, summed as ferry-map-writer's `served` sums the kernel's: per frontend
 * its key, its value with the group-id words (`groupWords`) zeroed, then for each group its entry and
 * its slots' values; `endpoints` gives a group's endpoints (undefined: missing). Group ids are left out,
 * so a plan made from scratch compares with any kernel's ids.
 */
export function servedDigest<V>(
  layout: MapLayout<FrontendKey, V>, frontends: Iterable<readonly [FrontendKey, V]>, groupWords: readonly number[], endpoints: (group: number) => WeightedEndpoint[] | undefined,
): { count: number; digest: string } {
  const groupCache = new Map<number, Uint32Array>();
  const groupWordsOf = (id: number): Uint32Array => {
    let words = groupCache.get(id);
    if (words) return words;
    const members = endpoints(id);
    if (!members) words = Uint32Array.of(MISSING_GROUP);
    else {
      // The group's entry and its slots' values, in one buffer.
      const { group: entry, slots } = groupSlots(members);
      const bytes = Buffer.alloc(MAPS.groups.value.size + slots.length * MAPS.slots.value.size);
      MAPS.groups.value.encode(entry).copy(bytes, 0);
      slots.forEach((slot, index) => MAPS.slots.value.write(slot, bytes, MAPS.groups.value.size + index * MAPS.slots.value.size));
      words = wordsOf(bytes);
    }
    groupCache.set(id, words);
    return words;
  };
  let low = 0;
  let high = 0;
  let count = 0;
  for (const [key, value] of frontends) {
    let a = 0;
    let b = 0x9747b28c;
    let n = 0;
    const feed = (word: number) => {
      a = mix(a, word);
      b = mix(b, word);
      n += 1;
    };
    for (const word of wordsOf(layout.key.encode(key))) feed(word);
    const valueWords = wordsOf(layout.value.encode(value));
    for (let index = 0; index < valueWords.length; index++) feed(groupWords.includes(index) ? 0 : valueWords[index]!);
    for (const index of groupWords) {
      if (valueWords[index] === 0) continue;
      for (const word of groupWordsOf(valueWords[index]!)) feed(word);
    }
    low = (low + finish(a, n)) >>> 0;
    high = (high + finish(b, n)) >>> 0;
    count += 1;
  }
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  return { count, digest: `${hex(high)}${hex(low)}` };
}
