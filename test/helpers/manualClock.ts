import type { Clock, Timer } from '../../src/core/clock';

interface Scheduled extends Timer {
  at: number;
  fn: () => void;
  every?: number;
  cancelled: boolean;
}

/** A clock that moves only when told to: `advance(ms)` runs every timer that falls due, in order. */
export class ManualClock implements Clock {
  #now: number;
  #timers: Scheduled[] = [];

  constructor(start = Date.now()) {
    this.#now = start;
  }

  now = (): number => this.#now;

  setTimeout(fn: () => void, ms: number): Timer {
    return this.#schedule(fn, ms);
  }

  setInterval(fn: () => void, ms: number): Timer {
    return this.#schedule(fn, ms, Math.max(1, ms));
  }

  clearTimeout(timer: Timer | undefined): void {
    if (timer) (timer as Scheduled).cancelled = true;
  }

  clearInterval(timer: Timer | undefined): void {
    this.clearTimeout(timer);
  }

  /** Moves time forward by `ms`, running due timers (intervals repeatedly) at their own times. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const due = this.#timers.filter((t) => !t.cancelled && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.#now = Math.max(this.#now, due.at);
      if (due.every) due.at += due.every;
      else due.cancelled = true;
      due.fn();
    }
    this.#timers = this.#timers.filter((t) => !t.cancelled);
    this.#now = end;
  }

  /** Timers still waiting to fire. */
  get pending(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  #schedule(fn: () => void, ms: number, every?: number): Scheduled {
    const t: Scheduled = { at: this.#now + Math.max(0, ms), fn, every, cancelled: false, unref: () => t };
    this.#timers.push(t);
    return t;
  }
}
