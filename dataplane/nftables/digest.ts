// ferry's nftables tables read object by object (digest.c): the digest of every chain with its
// rules and every set with its elements, in time linear in the rules where `nft list table` grows
// with their square. `ferry diff` compares these digests and lists only the objects that differ.
import { join } from 'node:path';
import { packageRoot } from '../../controlplane/package-root.js';
import { cachedBuild, type BuildOptions } from '../c-build.js';

/** The helper's source, compiled on first use against libmnl and libcrypto. */
export const NFT_DIGEST_SOURCE = join(packageRoot(), 'dataplane', 'nftables', 'digest.c');

/** The prebuilt helper (the image's), or nft-digest compiled with the system's cc (libmnl-dev and libssl-dev); the binary's path. */
export async function buildNftDigest(options: BuildOptions = {}): Promise<string> {
  return cachedBuild({ name: 'nft-digest', extension: '', sources: [NFT_DIGEST_SOURCE], command: (output) => ['cc', ['-O2', '-o', output, NFT_DIGEST_SOURCE, '-lmnl', '-lcrypto']] }, options);
}

/** One object of a table: `family` ip or ip6, `kind` table, chain, set, map, object or flowtable. */
export interface TableObject {
  family: string;
  kind: string;
  name: string;
}

/** Each object's digest, by objectKey. */
export type ObjectDigests = Map<string, { object: TableObject; digest: string }>;

export const objectKey = (object: TableObject): string => `${object.family} ${object.kind} ${object.name}`;

/** The helper's lines (`FAMILY KIND DIGEST NAME`, tab-separated, `\xNN` in names) as digests by object. */
export function parseDigests(text: string): ObjectDigests {
  const digests: ObjectDigests = new Map();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [family, kind, digest, escaped] = line.split('\t');
    if (!family || !kind || !digest || escaped === undefined) throw new Error(`nft-digest printed an unexpected line: ${line.slice(0, 200)}`);
    const object = { family, kind, name: escaped.replace(/\\x([0-9a-f]{2})/g, (_, code: string) => String.fromCharCode(parseInt(code, 16))) };
    digests.set(objectKey(object), { object, digest });
  }
  return digests;
}

/** The objects whose digests differ, or that only one side has, in key order. */
export function differingObjects(current: ObjectDigests, desired: ObjectDigests): TableObject[] {
  const keys = [...new Set([...current.keys(), ...desired.keys()])].sort();
  return keys.filter((key) => current.get(key)?.digest !== desired.get(key)?.digest).map((key) => (current.get(key) ?? desired.get(key))!.object);
}
