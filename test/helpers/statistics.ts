// Tail bounds for the tests that count where random choices went, so that each statistical assertion
// says how often it fails when the code is right.

/** P(X ≤ k) for X ~ Binomial(n, p), summed in log space (exact for the n of a test). */
export function binomialCdf(k: number, n: number, p: number): number {
  if (k < 0) return 0;
  if (k >= n) return 1;
  let logPmf = n * Math.log1p(-p);
  let logSum = logPmf;
  for (let i = 0; i < k; i++) {
    logPmf += Math.log((n - i) / (i + 1)) + Math.log(p / (1 - p));
    logSum = logSum + Math.log1p(Math.exp(logPmf - logSum));
  }
  return Math.min(1, Math.exp(logSum));
}

/** The largest k with P(X ≤ k) ≤ alpha for X ~ Binomial(n, p); -1 when even 0 is more likely. */
export function binomialLowerQuantile(n: number, p: number, alpha: number): number {
  let k = -1;
  while (k + 1 <= n && binomialCdf(k + 1, n, p) <= alpha) k += 1;
  return k;
}

/**
 * An upper bound of P(X ≥ S + d) for X a sum of n choices, each 1 with probability p_i given what came
 * before, S = Σ p_i (Azuma-Hoeffding: exp(-2 d² / n)). It holds when the p_i themselves depend on
 * earlier outcomes, as weights a balancer derived from the traffic do.
 */
export function hoeffdingUpperTail(n: number, d: number): number {
  return d <= 0 ? 1 : Math.exp((-2 * d * d) / n);
}
