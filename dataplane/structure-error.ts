// Structure checks on rendered rules catch a dangling jump or an over-long name before the kernel sees it.

/** The rendered rules are inconsistent: a bug in ferry, never the user's input. */
export class StructureError extends Error {}

/** Throws a StructureError naming every problem found, if any. */
export function reportProblems(backend: string, problems: string[]): void {
  if (problems.length > 0) throw new StructureError(`rendered ${backend} rules are inconsistent:\n  ${problems.join('\n  ')}`);
}
