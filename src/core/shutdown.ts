import type { Clock } from './clock';
import type { SessionRegistry } from './sessionRegistry';
import { CANCEL_WAIT_MS } from './sessionLimits';

/** The message a session ended by a shutdown gets (PostgreSQL 57P01, MySQL 1053). */
export const SHUTDOWN_MESSAGE = 'tokengate is shutting down; reconnect in a moment';

/**
 * How often a draining gateway looks for sessions that have come to rest. The relays say when
 * they are at rest but not when a transaction ends without a statement after it, so a draining
 * gateway looks: a tenth of a second is far below any grace an operator would set.
 */
const SETTLE_POLL_MS = 100;

/**
 * How long ended sessions may take to unregister once the grace is over: a session that ends with
 * a statement running cancels it upstream first (at most CANCEL_WAIT_MS), since closing the
 * upstream connection alone would leave a pg_sleep running on the server.
 */
const UNREGISTER_MS = CANCEL_WAIT_MS + 1_000;

export interface Drain {
  /** Resolves once no session is left (or the grace and the unregister wait are over). */
  readonly done: Promise<void>;
  /** Ends the grace early: every session left is ended now, cancelling its running statement (a second signal). */
  now(): void;
}

/**
 * Lets live sessions finish for `graceMs`: each ends (with its protocol's shutdown error) as soon
 * as it is idle outside a transaction; when the grace is over, the rest are ended. The listeners
 * must already be closed, so no new session arrives.
 */
export function drainSessions(registry: SessionRegistry, clock: Clock, graceMs: number): Drain {
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  let finished = false;
  const poll = clock.setInterval(() => endSettled(), SETTLE_POLL_MS);
  const grace = clock.setTimeout(() => forceRest(), graceMs);
  let unregister: ReturnType<Clock['setTimeout']> | undefined;

  const finish = (): void => {
    if (finished) return;
    finished = true;
    clock.clearInterval(poll);
    clock.clearTimeout(grace);
    clock.clearTimeout(unregister);
    registry.removeListener('end', onEnd);
    resolve();
  };
  const onEnd = (): void => {
    if (registry.size === 0) finish();
  };
  const endSettled = (): void => {
    for (const s of registry.select()) s.endIfIdle('shutdown', SHUTDOWN_MESSAGE);
  };
  let ending = false;
  const forceRest = (): void => {
    if (finished || ending) return;
    ending = true;
    clock.clearInterval(poll);
    clock.clearTimeout(grace);
    registry.endAll('shutdown', SHUTDOWN_MESSAGE);
    if (registry.size === 0) return finish();
    unregister = clock.setTimeout(finish, UNREGISTER_MS);
  };

  registry.on('end', onEnd);
  endSettled();
  if (registry.size === 0) finish();
  return { done, now: forceRest };
}
