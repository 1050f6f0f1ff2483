/**
 * Time as the gateway's timers and pools see it. Production code uses `systemClock`; tests inject
 * a manual clock so idle timeouts, lifetimes and expiry can be observed without sleeping.
 */
export interface Timer {
  unref(): unknown;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(timer: Timer | undefined): void;
  setInterval(fn: () => void, ms: number): Timer;
  clearInterval(timer: Timer | undefined): void;
}

/** Node's timers fire at once for delays above 2^31-1 ms; clamp instead. */
const MAX_DELAY_MS = 0x7fffffff;

const clamp = (ms: number): number => Math.max(0, Math.min(ms, MAX_DELAY_MS));

export const systemClock: Clock = {
  now: Date.now,
  setTimeout: (fn, ms) => setTimeout(fn, clamp(ms)),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
  setInterval: (fn, ms) => setInterval(fn, clamp(ms)),
  clearInterval: (timer) => clearInterval(timer as NodeJS.Timeout | undefined),
};
