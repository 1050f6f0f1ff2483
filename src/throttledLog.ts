import { log } from './log';

/**
 * Trouble an operator must act on (an upstream refusing the gateway's login, an unreachable
 * upstream or issuer), on the operational log at most once per cause per window: a flood of
 * logins against a broken upstream gives one line per window, with a count of the repeats
 * that were left out.
 */
export type TroubleLevel = 'warn' | 'error';

interface Window {
  openedAt: number;
  suppressed: number;
}

/** One line per key per this long. */
export const TROUBLE_WINDOW_MS = 60_000;
/** Keys remembered at most (each distinct upstream, role and cause is one). */
const MAX_KEYS = 1000;

export class ThrottledLog {
  readonly #windows = new Map<string, Window>();

  constructor(
    private readonly windowMs = TROUBLE_WINDOW_MS,
    private readonly now: () => number = Date.now,
    private readonly sink: (level: TroubleLevel, message: string) => void = (level, message) => log[level](message),
  ) {}

  /** Logs `message` unless the same `key` was logged within the window; returns whether it was logged. */
  report(level: TroubleLevel, key: string, message: string): boolean {
    const now = this.now();
    const w = this.#windows.get(key);
    if (w && now - w.openedAt < this.windowMs) {
      w.suppressed++;
      return false;
    }
    const repeats = w && w.suppressed > 0 ? ` (repeated ${w.suppressed} more time${w.suppressed === 1 ? '' : 's'} in the last ${Math.round((now - w.openedAt) / 1000)}s)` : '';
    this.#windows.delete(key);
    if (this.#windows.size >= MAX_KEYS) this.#windows.delete(this.#windows.keys().next().value!);
    this.#windows.set(key, { openedAt: now, suppressed: 0 });
    this.sink(level, message + repeats);
    return true;
  }
}

/** The process's trouble log (tests may build their own ThrottledLog with a clock and a sink). */
export const troubleLog = new ThrottledLog();
