import type { Pool, Poolable, PoolStats } from './pool';

/** An upstream connection a relay can borrow: it must be handed back (attached) to be reused. */
export interface RelayableConnection extends Poolable {
  readonly attached: boolean;
}

/**
 * The protocol-independent face of a session pool (PostgreSQL and MySQL alike): one client at a
 * time per connection, reset by the protocol's hook before the next client gets it.
 */
export class SessionPool<T extends RelayableConnection> {
  constructor(readonly name: string, private readonly pool: Pool<T>) {}

  acquire(): Promise<T> {
    return this.pool.acquire();
  }

  /** Not reusable, broken or still detached (the relay never handed the socket back): closed. Otherwise reset and reused. */
  release(conn: T, reusable: boolean): void {
    this.pool.release(conn, reusable && conn.attached);
  }

  stats(): PoolStats {
    return this.pool.stats();
  }

  /** Runs the janitor sweep now (tests; the timer does it otherwise). */
  sweep(): void {
    this.pool.sweep();
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
