// A queueing model of endpoints for the balancer: Poisson arrivals, one FIFO server per endpoint with
// its own service time, the balancer sampling live connections every second and reweighting.
import { balance, defaultBalanceConfig, initialBalanceState, type BalanceConfig } from '../../controlplane/balance/balance.js';

export interface SimulationResult {
  meanWaitMs: number;
  p99WaitMs: number;
  /** Share of requests each endpoint served. */
  shares: number[];
  /** Weights after every sample, per endpoint. */
  weightHistory: number[][];
  publications: number;
}

/** A seeded generator, so every run of the test sees the same arrivals. */
function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function simulate(options: { serviceMs: number[]; ratePerSecond: number; seconds: number; policy: 'uniform' | 'least-busy'; config?: BalanceConfig; seed?: number }): SimulationResult {
  const random = mulberry32(options.seed ?? 42);
  const keys = options.serviceMs.map((_, index) => `tcp/10.0.0.${index + 1}:80`);
  const freeAt = options.serviceMs.map(() => 0);
  const finishes: number[][] = options.serviceMs.map(() => []);
  const served = options.serviceMs.map(() => 0);
  const waits: number[] = [];
  let state = initialBalanceState;
  let publications = 0;
  const weightHistory: number[][] = [];
  let nextSample = 1000;
  let time = 0;
  while (time < options.seconds * 1000) {
    time += (-Math.log(1 - random()) / options.ratePerSecond) * 1000;
    while (nextSample <= time) {
      if (options.policy === 'least-busy') {
        const samples = new Map(keys.map((key, index) => [key, finishes[index]!.filter((finish) => finish > nextSample).length]));
        const next = balance(samples, [keys], state, nextSample, options.config ?? defaultBalanceConfig);
        if (next.changed) publications += 1;
        state = next;
      }
      weightHistory.push(keys.map((key) => state.weights.get(key) ?? 1));
      nextSample += 1000;
    }
    const weights = keys.map((key) => state.weights.get(key) ?? 1);
    let pick = random() * weights.reduce((a, b) => a + b, 0);
    let chosen = 0;
    while (pick >= weights[chosen]! && chosen < weights.length - 1) pick -= weights[chosen++]!;
    const start = Math.max(time, freeAt[chosen]!);
    freeAt[chosen] = start + options.serviceMs[chosen]!;
    finishes[chosen]!.push(freeAt[chosen]!);
    if (finishes[chosen]!.length > 5000) finishes[chosen]!.splice(0, 2500);
    served[chosen]! += 1;
    waits.push(start - time);
  }
  const sorted = [...waits].sort((a, b) => a - b);
  const total = served.reduce((a, b) => a + b, 0);
  return {
    meanWaitMs: waits.reduce((a, b) => a + b, 0) / waits.length,
    p99WaitMs: sorted[Math.floor(sorted.length * 0.99)]!,
    shares: served.map((count) => count / total),
    weightHistory,
    publications,
  };
}
