// Turns endpoint weights into the small integers that both backends render as probabilities.

/** The total that fractional weights are scaled to: enough resolution, small nft numgen ranges. */
const SCALE = 1000;

/**
 * Positive integer weights with the same proportions (reduced by their gcd, so equal weights are all
 * 1 and render exactly as kube-proxy's uniform choice). Fractional weights are scaled to a total of
 * SCALE by largest remainder, and every endpoint keeps at least 1 so that none is starved.
 */
export function integerWeights(weights: number[]): number[] {
  for (const weight of weights) {
    if (!Number.isFinite(weight) || weight <= 0) throw new RangeError(`endpoint weight must be a positive number, got ${weight}`);
  }
  const integers = weights.every(Number.isInteger) && sum(weights) <= SCALE * 10 ? weights : scale(weights);
  const divisor = integers.reduce(gcd, 0);
  return integers.map((weight) => weight / divisor);
}

function scale(weights: number[]): number[] {
  const total = sum(weights);
  const exact = weights.map((weight) => (weight / total) * SCALE);
  const floors = exact.map((value) => Math.max(1, Math.floor(value)));
  let missing = SCALE - sum(floors);
  const byRemainder = exact.map((value, index) => ({ index, remainder: value - Math.floor(value) }))
    .sort((a, b) => b.remainder - a.remainder || a.index - b.index);
  for (const { index } of byRemainder) {
    if (missing <= 0) break;
    floors[index]! += 1;
    missing -= 1;
  }
  return floors;
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
