/**
 * A generic connection pool for one key (upstream, role, database): LIFO idle reuse, a hard
 * cap on open connections, FIFO waiters with a deadline, asynchronous reset on release,
 * idle timeout and maximum lifetime. It knows nothing about PostgreSQL: creating, resetting
 * and closing a connection are supplied by the caller.
 */

export interface Poolable {
  readonly broken: boolean;
  readonly createdAt: number;
  lastUsedAt: number;
  close(): void;
}

export interface PoolHooks<T extends Poolable> {
  create(): Promise<T>;
  /** Make the connection fit for the next user; resolve false (or reject) to discard it. */
  reset(conn: T): Promise<boolean>;
}

export interface PoolLimits {
  maxConnections: number;
  /** Idle connections older than this (since last use) are closed; <= 0 disables. */
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
        'Retry later, end idle sessions, or raise the upstream\'s pool.maxConnections (or pool.acquireTimeoutMs) in the gateway config.',
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
  timer: NodeJS.Timeout;
  since: number;
}

export class Pool<T extends Poolable> {
  readonly #idle: T[] = [];
  readonly #active = new Set<T>();
  /** Logins and resets in flight: they count against maxConnections. */
  #creating = 0;
  readonly #resetting = new Set<T>();
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #waiters: Waiter<T>[] = [];
  readonly #janitor: NodeJS.Timeout;
  #closed = false;

  constructor(
    readonly name: string,
    private readonly limits: PoolLimits,
    private readonly hooks: PoolHooks<T>,
  ) {
    if (!(limits.maxConnections >= 1)) throw new RangeError(`Pool ${name}: maxConnections must be at least 1.`);
    this.#janitor = setInterval(() => this.sweep(), limits.janitorIntervalMs ?? 1000);
    this.#janitor.unref();
  }

  get #total(): number {
    return this.#idle.length + this.#active.size + this.#creating + this.#resetting.size;
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
      const since = Date.now();
      const waiter: Waiter<T> = {
        resolve, reject, since,
        timer: setTimeout(() => {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          reject(new PoolExhaustedError(this.name, this.limits.maxConnections, Date.now() - since));
        }, this.limits.acquireTimeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  /**
   * Gives a connection back. reusable=false (the session ended mid-protocol, say) or a broken
   * or expired connection is closed; anything else is reset first and only then reused.
   */
  release(conn: T, reusable: boolean): void {
    if (!this.#active.delete(conn)) return; // not ours or already released
    conn.lastUsedAt = Date.now();
    if (!reusable || conn.broken || this.#expired(conn) || this.#closed) {
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
          conn.lastUsedAt = Date.now();
          this.#idle.push(conn);
          this.#dispatch();
        }),
    );
  }

  /** Closes idle connections that are broken, idle too long or too old. Run by the janitor. */
  sweep(): void {
    const now = Date.now();
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const c = this.#idle[i];
      const idleTooLong = this.limits.idleTimeoutMs > 0 && now - c.lastUsedAt >= this.limits.idleTimeoutMs;
      if (c.broken || idleTooLong || this.#expired(c)) {
        this.#idle.splice(i, 1);
        this.#destroy(c);
      }
    }
  }

  /** Refuses new acquires, fails waiters, closes idle connections and waits for logins/resets in flight. Active connections close when released. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#janitor);
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new PoolClosedError(this.name));
    }
    for (const c of this.#idle.splice(0)) c.close();
    await Promise.allSettled([...this.#inFlight]);
  }

  #takeIdle(): T | undefined {
    for (let c = this.#idle.pop(); c; c = this.#idle.pop()) {
      if (!c.broken && !this.#expired(c)) return c;
      c.close();
    }
    return undefined;
  }

  #activate(conn: T): T {
    conn.lastUsedAt = Date.now();
    this.#active.add(conn);
    return conn;
  }

  #create(): Promise<T> {
    this.#creating++;
    const p = this.hooks.create().then(
      (conn) => {
        this.#creating--;
        if (this.#closed) {
          conn.close();
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
    conn.close();
    this.#dispatch();
  }

  /** Hands idle connections, or free capacity, to waiters in arrival order. */
  #dispatch(): void {
    while (this.#waiters.length > 0 && !this.#closed) {
      const idle = this.#takeIdle();
      if (!idle && this.#total >= this.limits.maxConnections) return;
      const w = this.#waiters.shift() as Waiter<T>;
      clearTimeout(w.timer);
      if (idle) w.resolve(this.#activate(idle));
      else this.#create().then(w.resolve, w.reject);
    }
  }

  #expired(conn: T): boolean {
    return this.limits.maxLifetimeMs > 0 && Date.now() - conn.createdAt >= this.limits.maxLifetimeMs;
  }

  #track(p: Promise<unknown>): void {
    const settled = p.then(() => undefined, () => undefined);
    this.#inFlight.add(settled);
    void settled.then(() => this.#inFlight.delete(settled));
  }
}
