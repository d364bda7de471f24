// A clock for scheduler and agent tests: time moves only when the test says so.
import type { Clock } from '../../controlplane/agent/sync-scheduler.js';

/** A clock that moves only when the test says so. */
export class ManualClock implements Clock {
  time = 0;
  private timers = new Map<number, { at: number; callback: () => void }>();
  private next = 0;
  now = () => this.time;
  setTimeout = (callback: () => void, ms: number) => {
    this.timers.set(++this.next, { at: this.time + ms, callback });
    return this.next;
  };
  clearTimeout = (handle: unknown) => {
    this.timers.delete(handle as number);
  };
  /** Moves time forward, firing timers in order and letting the syncs they start finish. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, timer]) => timer.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.time = due[1].at;
      due[1].callback();
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    }
    this.time = end;
  }
}
