// balance: how busy each endpoint is → how much of the new traffic it gets. Pure: samples in, weights out.
//
// The signal is the number of live connections this node has NATed to an endpoint (conntrack), the
// "requests in flight" that Prequal found beats CPU. Within each group of endpoints that share traffic
// (a Service port), an endpoint busier than the group's mean gets Envoy's least-request weight taken
// relative to the mean, ((mean + 1) / (active + 1))^bias, so a slow endpoint, which holds its
// connections longer, gets fewer new ones; the others keep weight 1. Because the samples are seconds
// old, the weights must not chase noise: loads are smoothed, a dead band ignores an endpoint less than
// one connection (or a quarter) above the mean, the floor keeps every endpoint reachable so it can
// show it has recovered, and hysteresis plus a minimum interval bound rule churn.

export interface BalanceConfig {
  /** Weight of the newest sample in the moving average (0..1]. */
  smoothing: number;
  /** Envoy's active-request bias: 0 is uniform, larger favours idle endpoints more. */
  bias: number;
  /** The smallest weight relative to an idle endpoint's 1. */
  floor: number;
  /** Weights change only when one moves by more than this fraction. */
  hysteresis: number;
  /** Weights are published at most this often. */
  minIntervalMs: number;
}

export const defaultBalanceConfig: BalanceConfig = { smoothing: 0.3, bias: 1, floor: 0.1, hysteresis: 0.2, minIntervalMs: 5000 };

/** What the balancer remembers between samples. */
export interface BalanceState {
  /** Smoothed live connections per endpoint key. */
  loads: ReadonlyMap<string, number>;
  /** The weights last published (what the rules hold). */
  weights: ReadonlyMap<string, number>;
  publishedAt: number;
}

export const initialBalanceState: BalanceState = { loads: new Map(), weights: new Map(), publishedAt: -Infinity };

/**
 * Folds one sample (live connections per endpoint key, for every endpoint the node uses) into the
 * state. `groups` lists the endpoint keys that share traffic (one list per Service port and policy);
 * an endpoint in several groups takes its smallest weight. `changed` says whether the published
 * weights changed, that is whether rules must be rewritten.
 */
export function balance(samples: ReadonlyMap<string, number>, groups: readonly (readonly string[])[], previous: BalanceState, now: number,
  config: BalanceConfig = defaultBalanceConfig): BalanceState & { changed: boolean } {
  const loads = new Map<string, number>();
  for (const [key, active] of samples) {
    const before = previous.loads.get(key);
    loads.set(key, before === undefined ? active : config.smoothing * active + (1 - config.smoothing) * before);
  }
  const wanted = new Map<string, number>();
  for (const group of groups) {
    const members = group.filter((key) => loads.has(key));
    const mean = members.reduce((sum, key) => sum + loads.get(key)!, 0) / members.length;
    for (const key of members) {
      const load = loads.get(key)!;
      const busy = load - mean >= Math.max(1, 0.25 * mean);
      const weight = busy ? quantize(Math.max(config.floor, ((mean + 1) / (load + 1)) ** config.bias)) : 1;
      wanted.set(key, Math.min(weight, wanted.get(key) ?? 1));
    }
  }
  const moved = [...wanted].some(([key, weight]) => {
    const published = previous.weights.get(key) ?? 1;
    return Math.abs(weight - published) / published > config.hysteresis;
  });
  const gone = [...previous.weights.keys()].some((key) => !wanted.has(key));
  const due = now - previous.publishedAt >= config.minIntervalMs;
  if ((moved || gone) && due) {
    // Idle endpoints (weight 1) are left out: a missing weight is 1, and the map stays small.
    const weights = new Map([...wanted].filter(([, weight]) => weight !== 1));
    return { loads, weights, publishedAt: now, changed: !sameWeights(weights, previous.weights) };
  }
  return { loads, weights: previous.weights, publishedAt: previous.publishedAt, changed: false };
}

/** Two significant steps (1/20) are plenty for traffic shares and keep equal loads exactly equal. */
function quantize(weight: number): number {
  return Math.max(1, Math.round(weight * 20)) / 20;
}

function sameWeights(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  return a.size === b.size && [...a].every(([key, weight]) => b.get(key) === weight);
}
