import type { Clock, Timer } from './clock';
import type { SessionState } from './relay';

/** session.idleTimeoutMs and session.idleInTransactionTimeoutMs, as read when the session started. */
export interface IdleLimits {
  idleMs?: number;
  idleInTransactionMs?: number;
}

/** What the watch reads of a relay: counters and a state the relay keeps anyway. */
export interface Watched {
  readonly state: SessionState;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
}

/** Checks per timeout: a session ends at most a tenth of its timeout late. */
const CHECKS_PER_TIMEOUT = 10;
const MIN_CHECK_MS = 50;

/**
 * Ends a session whose client has been quiet for too long, at no cost on the relay's hot path:
 * one timer per session looks every tenth of the shortest timeout at the byte counters and the
 * state the relay already keeps. Quiet means neither counter moved and the state stayed the
 * same; a session with a statement running is never idle.
 */
export class IdleWatch {
  #timer: Timer | undefined;
  #activity = -1;
  #state: SessionState | undefined;
  #quietSince: number;

  constructor(
    private readonly clock: Clock,
    private readonly relay: Watched,
    private readonly limits: IdleLimits,
    private readonly onIdle: (state: 'idle' | 'transaction', limitMs: number) => void,
  ) {
    this.#quietSince = clock.now();
  }

  /** Starts watching; a no-op when neither timeout is set. */
  start(): void {
    const shortest = Math.min(this.limits.idleMs ?? Infinity, this.limits.idleInTransactionMs ?? Infinity);
    if (shortest === Infinity) return;
    this.#timer = this.clock.setInterval(this.#check, Math.max(MIN_CHECK_MS, Math.floor(shortest / CHECKS_PER_TIMEOUT)));
  }

  stop(): void {
    this.clock.clearInterval(this.#timer);
    this.#timer = undefined;
  }

  readonly #check = (): void => {
    const now = this.clock.now();
    const activity = this.relay.bytesFromClient + this.relay.bytesToClient;
    const state = this.relay.state;
    if (activity !== this.#activity || state !== this.#state || state === 'active' || state === 'handshake') {
      // Something happened since the last look (at most one period ago): quiet from now on.
      this.#activity = activity;
      this.#state = state;
      this.#quietSince = now;
      return;
    }
    const limit = state === 'idle' ? this.limits.idleMs : this.limits.idleInTransactionMs;
    if (limit !== undefined && now - this.#quietSince >= limit) {
      this.stop();
      this.onIdle(state, limit);
    }
  };
}
