import type { RoleConfig, UpstreamConfig } from '../config/schema';
import { systemClock, type Clock } from '../core/clock';
import { Pool, type PoolStats } from '../core/pool';
import { PoolRegistry } from '../core/poolRegistry';
import { connectPgUpstream } from './login';
import type { PgServerConnection } from './serverConnection';

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
  /** The pool's clock (tests move a manual one). */
  clock?: Clock;
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
export class PgPool extends Pool<PgServerConnection> {
  constructor(readonly key: PgPoolKey, opts: PgPoolOptions = {}) {
    const { upstream, role, database } = key;
    const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    const resetTimeoutMs = opts.resetTimeoutMs ?? 5_000;
    const parameters = opts.startupParameters ?? { application_name: 'tokengate' };
    super(
      pgPoolName(key),
      { ...upstream.pool, janitorIntervalMs: opts.janitorIntervalMs },
      {
        create: () =>
          connectPgUpstream({
            host: upstream.host, port: upstream.port, tls: upstream.tls, caFile: upstream.caFile,
            user: role.user, password: role.password, database, parameters, connectTimeoutMs,
          }),
        reset: (conn) => resetPgConnection(conn, resetTimeoutMs),
      },
      opts.clock ?? systemClock,
    );
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

/** The PostgreSQL pools of the gateway's pool registry: one PgPool per (upstream settings, role, database). */
export class PgPoolRegistry {
  constructor(private readonly opts: PgPoolOptions = {}, readonly registry = new PoolRegistry(opts.clock)) {}

  get(upstream: UpstreamConfig, role: RoleConfig, database: string): PgPool {
    return this.registry.get({ protocol: 'postgres', upstream, role, parts: [database], name: () => pgPoolName({ upstream, role, database }) },
      (clock) => new PgPool({ upstream, role, database }, { ...this.opts, clock })) as PgPool;
  }

  stats(): Record<string, PoolStats> {
    return this.registry.stats('postgres');
  }

  closeAll(): Promise<void> {
    return this.registry.closeAll('postgres');
  }
}
