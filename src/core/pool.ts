import { systemClock, type Clock, type Timer } from './clock';

/**
 * A connection pool for one key (upstream fingerprint, role, database): LIFO idle reuse, a hard
 * cap on open connections, FIFO waiters with a deadline, asynchronous reset on release, idle
 * timeout and maximum lifetime. It knows no protocol: creating and resetting a connection are
 * supplied by the caller. Times come from the injected clock, so tests can move it.
 */

/** What every pooled upstream connection offers, whatever its protocol. */
export interface UpstreamConnection {
  /** The socket failed or the connection was closed: it must not be handed out again. */
  readonly broken: boolean;
  /** The connection reads its own socket again (a relay that borrowed it handed it back). */
  readonly attached: boolean;
  close(): void;
}

export interface PoolHooks<T extends UpstreamConnection> {
  create(): Promise<T>;
  /** Make the connection fit for the next user; resolve false (or reject) to discard it. */
  reset(conn: T): Promise<boolean>;
}

export interface PoolLimits {
  maxConnections: number;
  /** Idle connections unused for this long are closed; <= 0 disables. */
  idleTimeoutMs: number;
  /** Connections older than this are closed when next released or found idle; <= 0 disables. */
  maxLifetimeMs: number;
  acquireTimeoutMs: number;
  /** How often the janitor sweeps idle connections (default 1000 ms). */
  janitorIntervalMs?: number;
}

export interface PoolStats {
  total: number;
  idle: number;
  active: number;
  waiting: number;
}

export class PoolExhaustedError extends Error {
  constructor(
    readonly poolName: string,
    readonly maxConnections: number,
    readonly waitedMs: number,
  ) {
    super(
      `All ${maxConnections} upstream connections of pool ${poolName} are in use; waited ${waitedMs} ms for one to be released. ` +
        'Retry later, end idle sessions, or raise the upstream\'s pool.maxConnections (or pool.acquireTimeout, how long to wait for one) in the gateway config.',
    );
    this.name = 'PoolExhaustedError';
  }
}

export class PoolClosedError extends Error {
  constructor(poolName: string) {
    super(`Pool ${poolName} is shutting down; no new upstream connections are handed out.`);
    this.name = 'PoolClosedError';
  }
}

interface Waiter<T> {
  resolve(conn: T): void;
  reject(err: Error): void;
  timer: Timer;
  since: number;
}

/** When a connection was opened and last handed back, on the pool's clock. */
interface Times {
  createdAt: number;
  lastUsedAt: number;
}

export class Pool<T extends UpstreamConnection> {
  readonly #idle: T[] = [];
  readonly #active = new Set<T>();
  readonly #times = new Map<T, Times>();
  /** Logins and resets in flight: they count against maxConnections. */
  #creating = 0;
  readonly #resetting = new Set<T>();
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #waiters: Waiter<T>[] = [];
  readonly #janitor: Timer;
  #closed = false;

  constructor(
    readonly name: string,
    private readonly limits: PoolLimits,
    private readonly hooks: PoolHooks<T>,
    private readonly clock: Clock = systemClock,
  ) {
    if (!(limits.maxConnections >= 1)) throw new RangeError(`Pool ${name}: maxConnections must be at least 1.`);
    this.#janitor = clock.setInterval(() => this.sweep(), limits.janitorIntervalMs ?? 1000);
    this.#janitor.unref();
  }

  get #total(): number {
    return this.#idle.length + this.#active.size + this.#creating + this.#resetting.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  stats(): PoolStats {
    return { total: this.#total, idle: this.#idle.length, active: this.#active.size, waiting: this.#waiters.length };
  }

  acquire(): Promise<T> {
    if (this.#closed) return Promise.reject(new PoolClosedError(this.name));
    const idle = this.#takeIdle();
    if (idle) return Promise.resolve(this.#activate(idle));
    if (this.#total < this.limits.maxConnections) return this.#create();
    return new Promise<T>((resolve, reject) => {
      const since = this.clock.now();
      const waiter: Waiter<T> = {
        resolve, reject, since,
        timer: this.clock.setTimeout(() => {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          reject(new PoolExhaustedError(this.name, this.limits.maxConnections, this.clock.now() - since));
        }, this.limits.acquireTimeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  /**
   * Gives a connection back. reusable=false (the session ended mid-protocol, say), a connection
   * still detached (its relay never handed the socket back), a broken or an expired one is
   * closed; anything else is reset first and only then reused.
   */
  release(conn: T, reusable: boolean): void {
    if (!this.#active.delete(conn)) return; // not ours or already released
    this.#touch(conn);
    if (!reusable || !conn.attached || conn.broken || this.#expired(conn) || this.#closed) {
      this.#destroy(conn);
      return;
    }
    this.#resetting.add(conn);
    this.#track(
      this.hooks
        .reset(conn)
        .catch(() => false)
        .then((ok) => {
          this.#resetting.delete(conn);
          if (!ok || conn.broken || this.#closed) return this.#destroy(conn);
          this.#touch(conn);
          this.#idle.push(conn);
          this.#dispatch();
        }),
    );
  }

  /** Closes idle connections that are broken, idle too long or too old. Run by the janitor. */
  sweep(): void {
    const now = this.clock.now();
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const c = this.#idle[i];
      const idleTooLong = this.limits.idleTimeoutMs > 0 && now - this.#timesOf(c).lastUsedAt >= this.limits.idleTimeoutMs;
      if (c.broken || idleTooLong || this.#expired(c)) {
        this.#idle.splice(i, 1);
        this.#destroy(c);
      }
    }
  }

  /**
   * Refuses new acquires, fails waiters, closes idle connections and waits for logins and resets
   * in flight. Connections in use are closed when they are released.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.clock.clearInterval(this.#janitor);
    for (const w of this.#waiters.splice(0)) {
      this.clock.clearTimeout(w.timer);
      w.reject(new PoolClosedError(this.name));
    }
    for (const c of this.#idle.splice(0)) this.#destroy(c);
    await Promise.allSettled([...this.#inFlight]);
  }

  #takeIdle(): T | undefined {
    for (let c = this.#idle.pop(); c; c = this.#idle.pop()) {
      if (!c.broken && !this.#expired(c)) return c;
      this.#destroy(c);
    }
    return undefined;
  }

  #activate(conn: T): T {
    this.#touch(conn);
    this.#active.add(conn);
    return conn;
  }

  #create(): Promise<T> {
    this.#creating++;
    const p = this.hooks.create().then(
      (conn) => {
        this.#creating--;
        const now = this.clock.now();
        this.#times.set(conn, { createdAt: now, lastUsedAt: now });
        if (this.#closed) {
          this.#destroy(conn);
          throw new PoolClosedError(this.name);
        }
        return this.#activate(conn);
      },
      (err: unknown) => {
        this.#creating--;
        this.#dispatch(); // the slot is free again for a waiter
        throw err;
      },
    );
    this.#track(p);
    return p;
  }

  #destroy(conn: T): void {
    this.#times.delete(conn);
    conn.close();
    this.#dispatch();
  }

  /** Hands idle connections, or free capacity, to waiters in arrival order. */
  #dispatch(): void {
    while (this.#waiters.length > 0 && !this.#closed) {
      const idle = this.#takeIdle();
      if (!idle && this.#total >= this.limits.maxConnections) return;
      const w = this.#waiters.shift() as Waiter<T>;
      this.clock.clearTimeout(w.timer);
      if (idle) w.resolve(this.#activate(idle));
      else this.#create().then(w.resolve, w.reject);
    }
  }

  #timesOf(conn: T): Times {
    let t = this.#times.get(conn);
    if (!t) {
      const now = this.clock.now();
      t = { createdAt: now, lastUsedAt: now };
      this.#times.set(conn, t);
    }
    return t;
  }

  #touch(conn: T): void {
    this.#timesOf(conn).lastUsedAt = this.clock.now();
  }

  #expired(conn: T): boolean {
    return this.limits.maxLifetimeMs > 0 && this.clock.now() - this.#timesOf(conn).createdAt >= this.limits.maxLifetimeMs;
  }

  #track(p: Promise<unknown>): void {
    const settled = p.then(() => undefined, () => undefined);
    this.#inFlight.add(settled);
    void settled.then(() => this.#inFlight.delete(settled));
  }
}
