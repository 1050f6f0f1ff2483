import type { Clock, Timer } from './clock';
import type { SessionRegistry } from './sessionRegistry';

/**
 * The wording and the bounded waits of the limits that end a live session (idle timeouts, a
 * grant's maxSessionDuration) and of the cancel an ending session sends upstream.
 */

/** How long an ended session keeps its upstream connection while the statement it ran is cancelled. */
export const CANCEL_WAIT_MS = 5_000;

export function idleMessage(limitMs: number): string {
  return `terminating connection due to idle-session timeout: tokengate ends sessions idle for ${formatMs(limitMs)} (session.idleTimeout); reconnect when you need the database again`;
}

export function idleInTransactionMessage(limitMs: number): string {
  return `terminating connection due to idle-in-transaction timeout: the transaction was idle for ${formatMs(limitMs)} (session.idleInTransactionTimeout) and was rolled back; commit promptly and reconnect`;
}

export function sessionDurationMessage(grant: string, limitMs: number): string {
  return `this session reached the longest a session under grant "${grant}" may last (${formatMs(limitMs)}, its maxSessionDuration) and tokengate ended it; reconnect to continue`;
}

/** Resolves when `cancel` settles (a failure is as good as done: the connection is closed next) or after CANCEL_WAIT_MS. */
export function boundedCancel(clock: Clock, cancel: () => Promise<void>): Promise<void> {
  let timer: Timer | undefined;
  const bound = new Promise<void>((resolve) => (timer = clock.setTimeout(resolve, CANCEL_WAIT_MS)));
  return Promise.race([cancel().catch(() => undefined), bound]).then(() => clock.clearTimeout(timer));
}

/**
 * Resolves once every session has unregistered, or after CANCEL_WAIT_MS: an ended session stays
 * registered while its running statement is being cancelled, so a gateway that closes its pools
 * and exits right after ending every session should wait for this first.
 */
export function sessionsGone(registry: SessionRegistry, clock: Clock): Promise<void> {
  if (registry.size === 0) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clock.clearTimeout(timer);
      registry.removeListener('end', onEnd);
      resolve();
    };
    const onEnd = (): void => {
      if (registry.size === 0) done();
    };
    const timer = clock.setTimeout(done, CANCEL_WAIT_MS);
    registry.on('end', onEnd);
  });
}

/** 90000 -> "1m30s", 500 -> "500ms": how a duration reads in a message. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, size] of [['h', 3600], ['m', 60], ['s', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  return parts.join('');
}
