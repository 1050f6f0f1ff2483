/**
 * The wall clock to a tenth of a second, for times that are read per statement but only shown
 * to operators (when a session's running statement started). Like pgbouncer's cached time, it
 * keeps a clock read (a call into the runtime and a heap number) off every statement: the time
 * is refreshed by one timer per process instead.
 */
const RESOLUTION_MS = 100;

let now = 0;
let ticking = false;

export function coarseNow(): number {
  if (!ticking) {
    ticking = true;
    now = Date.now();
    // unref: this timer alone never keeps the process alive.
    setInterval(() => { now = Date.now(); }, RESOLUTION_MS).unref();
  }
  return now;
}
