// How many rule lines a replacement adds and removes, from the two listings a comparison read.
import { diffLines } from 'diff';

export function lineChanges(current: string, desired: string): { added: number; removed: number } {
  const changes = diffLines(current, desired);
  const count = (kind: 'added' | 'removed') => changes.filter((change) => change[kind]).reduce((sum, change) => sum + (change.count ?? 0), 0);
  return { added: count('added'), removed: count('removed') };
}
