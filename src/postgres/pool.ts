import type { RoleConfig, UpstreamConfig } from '../config/schema';
import { connectPgUpstream } from './login';
import type { PgServerConnection } from './serverConnection';
import { Pool, type PoolStats } from '../core/pool';
import { SessionPool } from '../core/sessionPool';

export { PoolExhaustedError, PoolClosedError } from '../core/pool';
export type { PoolStats } from '../core/pool';

export interface PgPoolKey {
  upstream: UpstreamConfig;
  role: RoleConfig;
  /** The real database name (not the client-facing alias). */
  database: string;
}

export interface PgPoolOptions {
  /** Bounds each upstream login (default 10 s). */
  connectTimeoutMs?: number;
  /** Bounds each reset statement on release (default 5 s). */
  resetTimeoutMs?: number;
  /** Startup GUCs for every pooled connection (default application_name=tokengate). DISCARD ALL returns to these. */
  startupParameters?: Record<string, string>;
  janitorIntervalMs?: number;
}

/** The pool key as text: upstream/role/database. Used in messages and stats. */
export function pgPoolName(key: PgPoolKey): string {
  return `${key.upstream.name}/${key.role.name}/${key.database}`;
}

/**
 * Authenticated upstream PostgreSQL sessions for one (upstream, role, database), session-pooled
 * like pgbouncer: a connection serves one client at a time and is reset (ROLLBACK if needed,
 * then DISCARD ALL and the last login's settings) before the next one gets it.
 */
export class PgPool extends SessionPool<PgServerConnection> {
  constructor(readonly key: PgPoolKey, opts: PgPoolOptions = {}) {
    const { upstream, role, database } = key;
    const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    const resetTimeoutMs = opts.resetTimeoutMs ?? 5_000;
    const parameters = opts.startupParameters ?? { application_name: 'tokengate' };
    const name = pgPoolName(key);
    super(name, new Pool<PgServerConnection>(
      name,
      { ...upstream.pool, janitorIntervalMs: opts.janitorIntervalMs },
      {
        create: () =>
          connectPgUpstream({
            host: upstream.host, port: upstream.port, tls: upstream.tls, caFile: upstream.caFile,
            user: role.user, password: role.password, database, parameters, connectTimeoutMs,
          }),
        reset: (conn) => resetPgConnection(conn, resetTimeoutMs),
      },
    ));
  }
}

/**
 * ROLLBACK an open or failed transaction (DISCARD ALL refuses to run inside one), then
 * DISCARD ALL, and put the last login's settings back in the same write: a connection goes
 * back to the pool as a fresh login of that agent would leave it, so the agent's next login
 * can skip its SET. Any other login starts with DISCARD ALL itself (PgClientSession).
 */
export async function resetPgConnection(conn: PgServerConnection, timeoutMs: number): Promise<boolean> {
  // A function, not a property read: query() changes txStatus behind the compiler's narrowing.
  const idle = (): boolean => conn.txStatus === 'I';
  if (!idle()) {
    const r = await conn.query('ROLLBACK', timeoutMs);
    if (r.error || !idle()) return false;
  }
  const settings = conn.sessionSettings;
  const [discard, reapplied] = await conn.queries(settings ? ['DISCARD ALL', settings] : ['DISCARD ALL'], timeoutMs);
  if (discard.error) return false;
  if (reapplied?.error) conn.sessionSettings = ''; // its implicit transaction rolled the SETs back
  return idle();
}

/** One PgPool per (upstream, role, database), created on first use. */
export class PgPoolRegistry {
  readonly #pools = new Map<string, PgPool>();

  constructor(private readonly opts: PgPoolOptions = {}) {}

  get(upstream: UpstreamConfig, role: RoleConfig, database: string): PgPool {
    const name = pgPoolName({ upstream, role, database });
    let pool = this.#pools.get(name);
    if (!pool) {
      pool = new PgPool({ upstream, role, database }, this.opts);
      this.#pools.set(name, pool);
    }
    return pool;
  }

  stats(): Record<string, PoolStats> {
    const out: Record<string, PoolStats> = {};
    for (const [name, pool] of this.#pools) out[name] = pool.stats();
    return out;
  }

  async closeAll(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.close()));
  }
}
