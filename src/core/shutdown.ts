import type { Clock } from './clock';
import type { SessionRegistry } from './sessionRegistry';

/** The message a session ended by a shutdown gets (PostgreSQL 57P01, MySQL 1053). */
export const SHUTDOWN_MESSAGE = 'tokengate is shutting down; reconnect in a moment';

/**
 * How often a draining gateway looks for sessions that have come to rest. The relays say when
 * they are at rest but not when a transaction ends without a statement after it, so a draining
 * gateway looks: a tenth of a second is far below any grace an operator would set.
 */
const SETTLE_POLL_MS = 100;

/** How long ended sessions may take to unregister once the grace is over (their closing messages are written). */
const UNREGISTER_MS = 5_000;

/**
 * How long the statements still running when the grace is over get to be cancelled upstream
 * before their sessions are ended (a CancelRequest or KILL QUERY on its own connection). Closing
 * the upstream connection does not stop a statement: PostgreSQL would run a pg_sleep to its end.
 */
const CANCEL_WAIT_MS = 2_000;

export interface Drain {
  /** Resolves once no session is left (or the grace and the unregister wait are over). */
  readonly done: Promise<void>;
  /** Ends the grace early: running statements are cancelled and every session left is ended now (a second signal). */
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
  let forcing = false;
  const forceRest = (): void => {
    if (finished || forcing) return;
    forcing = true;
    clock.clearInterval(poll);
    clock.clearTimeout(grace);
    const running = registry.select().filter((s) => s.info().state === 'active');
    if (running.length === 0) return endRest();
    const cancelWait = clock.setTimeout(endRest, CANCEL_WAIT_MS);
    void Promise.allSettled(running.map((s) => s.cancelQuery())).then(() => {
      clock.clearTimeout(cancelWait);
      endRest();
    });
  };
  let ending = false;
  const endRest = (): void => {
    if (finished || ending) return;
    ending = true;
    registry.endAll('shutdown', SHUTDOWN_MESSAGE);
    if (registry.size === 0) return finish();
    unregister = clock.setTimeout(finish, UNREGISTER_MS);
  };

  registry.on('end', onEnd);
  endSettled();
  if (registry.size === 0) finish();
  return { done, now: forceRest };
}
