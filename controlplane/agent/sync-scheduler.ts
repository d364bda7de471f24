// When to sync: changes are coalesced to at most one sync per minSyncPeriod, everything is resynced
// every syncPeriod, and a failed sync is retried with backoff as a full one (as kube-proxy does).

/** The clock the scheduler runs on; tests drive a manual one. */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface SchedulerOptions {
  minSyncPeriodMs: number;
  syncPeriodMs: number;
  clock?: Clock;
}

/**
 * Runs `sync(full, changedSince)` one at a time; `full` is true at start, every syncPeriod and after a
 * failure; `changedSince` is when the oldest change it carries arrived (clock time), if any.
 */
export class SyncScheduler {
  private readonly clock: Clock;
  private timer: unknown;
  private dueAt = Infinity;
  private running: Promise<void> | undefined;
  private lastStart = -Infinity;
  private lastFull = -Infinity;
  private fullPending = true;
  private changePending = false;
  private failures = 0;
  private stopped = false;
  /** When the oldest change not yet in the kernel arrived (undefined when there is none). */
  pendingSince: number | undefined;

  constructor(private readonly sync: (full: boolean, changedSince: number | undefined) => Promise<void>, private readonly options: SchedulerOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /** Starts with a full sync at once. */
  start(): void {
    this.schedule(this.clock.now());
  }

  /** Something changed: sync soon, but not sooner than minSyncPeriod after the last sync started. */
  request(): void {
    this.changePending = true;
    this.pendingSince ??= this.clock.now();
    this.schedule(Math.max(this.clock.now(), this.lastStart + this.options.minSyncPeriodMs));
  }

  /** Stops scheduling and waits for a sync in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    await this.running;
  }

  private schedule(at: number): void {
    if (this.stopped || at >= this.dueAt) return;
    this.clock.clearTimeout(this.timer);
    this.dueAt = at;
    this.timer = this.clock.setTimeout(() => void this.run(), Math.max(0, at - this.clock.now()));
  }

  private async run(): Promise<void> {
    this.dueAt = Infinity;
    if (this.running) {
      // A sync is in progress; run again when it ends.
      await this.running;
      return this.schedule(this.clock.now());
    }
    const full = this.fullPending || this.clock.now() - this.lastFull >= this.options.syncPeriodMs;
    const changesAt = this.pendingSince;
    this.changePending = false;
    this.pendingSince = undefined;
    this.lastStart = this.clock.now();
    this.running = this.sync(full, changesAt).then(
      () => {
        this.failures = 0;
        this.fullPending = false;
        if (full) this.lastFull = this.lastStart;
      },
      () => {
        this.failures += 1;
        this.fullPending = true;
        this.pendingSince ??= changesAt ?? this.lastStart;
      },
    );
    await this.running;
    this.running = undefined;
    if (this.failures > 0) {
      const backoff = Math.min(this.options.minSyncPeriodMs * 2 ** this.failures, this.options.syncPeriodMs);
      this.schedule(this.clock.now() + backoff);
    } else if (this.changePending) {
      this.schedule(Math.max(this.clock.now(), this.lastStart + this.options.minSyncPeriodMs));
    } else {
      this.schedule(this.lastFull + this.options.syncPeriodMs);
    }
  }
}
