import type { RoleConfig, UpstreamConfig } from '../config/schema';
import { encodeInitDb, encodeQuery, encodeSimpleCommand } from '../../protocols/mysql/command';
import { CLIENT_COMPRESS, CLIENT_LOCAL_FILES, COM_RESET_CONNECTION, formatCapabilities } from '../../protocols/mysql/constants';
import { connectMysqlUpstream } from './login';
import type { MysqlCommandResult, MysqlServerConnection } from './serverConnection';
import { systemClock, type Clock } from '../core/clock';
import { Pool, type PoolStats } from '../core/pool';
import { PoolRegistry } from '../core/poolRegistry';

export { PoolExhaustedError, PoolClosedError } from '../core/pool';
export type { PoolStats } from '../core/pool';
export { probeMysqlServerVersion } from './login';

export interface MysqlPoolKey {
  upstream: UpstreamConfig;
  role: RoleConfig;
  /** The real database name ('' = none), not the client-facing alias. */
  database: string;
  /** Format-affecting capability bits of the clients this pool serves (see MysqlLoginOptions). */
  capabilities: number;
  /** Collation id the sessions are opened with. */
  characterSet: number;
}

export interface MysqlPoolOptions {
  /** Bounds each upstream login (default 10 s). */
  connectTimeoutMs?: number;
  /** Bounds each reset command on release (default 5 s). */
  resetTimeoutMs?: number;
  /** Connection attributes of pooled connections (default program_name=tokengate). */
  connectAttributes?: Record<string, string>;
  janitorIntervalMs?: number;
  /** The pool's clock (tests move a manual one). */
  clock?: Clock;
}

/** The pool key as text: upstream/role/database/caps/collation. Used in messages and stats. */
export function mysqlPoolName(key: MysqlPoolKey): string {
  return `${key.upstream.name}/${key.role.name}/${key.database || '(none)'}/caps=0x${(key.capabilities >>> 0).toString(16)}/collation=${key.characterSet}`;
}

/** What a freshly logged-in session looks like; a reset session must look the same. */
export interface MysqlSessionBaseline {
  charsetClient: string | null;
  charsetResults: string | null;
  collationConnection: string | null;
  database: string | null;
}

const BASELINE_SQL = 'SELECT @@character_set_client, @@character_set_results, @@collation_connection, DATABASE()';
/** Server-reported charset/collation names are identifiers; anything else is not put into SQL. */
const IDENTIFIER = /^[A-Za-z0-9_]+$/;

/**
 * Authenticated upstream MySQL/MariaDB sessions for one (upstream, role, database, client
 * capabilities, collation), session-pooled: a connection serves one client at a time and is
 * reset before the next one gets it.
 */
export class MysqlPool extends Pool<MysqlServerConnection> {
  constructor(readonly key: MysqlPoolKey, opts: MysqlPoolOptions = {}) {
    const { upstream, role, database, capabilities, characterSet } = key;
    const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    const resetTimeoutMs = opts.resetTimeoutMs ?? 5_000;
    const connectAttributes = opts.connectAttributes ?? { program_name: 'tokengate' };
    super(
      mysqlPoolName(key),
      { ...upstream.pool, janitorIntervalMs: opts.janitorIntervalMs },
      {
        create: async () => {
          const conn = await connectMysqlUpstream({
            host: upstream.host, port: upstream.port, tls: upstream.tls, caFile: upstream.caFile,
            user: role.user, password: role.password, database, capabilities, characterSet,
            connectTimeoutMs, connectAttributes,
          });
          try {
            baselines.set(conn, await readBaseline(conn, connectTimeoutMs));
          } catch (err) {
            conn.close();
            throw err;
          }
          return conn;
        },
        reset: (conn) => {
          const baseline = baselines.get(conn);
          return baseline ? resetMysqlConnection(conn, baseline, resetTimeoutMs) : Promise.resolve(false);
        },
      },
      opts.clock ?? systemClock,
    );
  }
}

/** Each connection's session state right after login, which a reset must restore. */
const baselines = new WeakMap<MysqlServerConnection, MysqlSessionBaseline>();

async function readBaseline(conn: MysqlServerConnection, timeoutMs: number): Promise<MysqlSessionBaseline> {
  return baselineOf(conn, await conn.query(BASELINE_SQL, timeoutMs));
}

function baselineOf(conn: MysqlServerConnection, r: MysqlCommandResult): MysqlSessionBaseline {
  const row = r.rows?.[0];
  if (r.error || !row || row.length !== 4) {
    throw new Error(`Cannot read the session state of upstream connection ${conn.id}${r.error ? `: ERROR ${r.error.code}: ${r.error.message}` : ''}.`);
  }
  return { charsetClient: row[0], charsetResults: row[1], collationConnection: row[2], database: row[3] };
}

const RESET_AND_CHECK = [encodeSimpleCommand(COM_RESET_CONNECTION), encodeQuery(BASELINE_SQL)];

/**
 * COM_RESET_CONNECTION clears the transaction, user variables, temporary tables, prepared
 * statements and locks, and resets session variables. MariaDB 10.11 keeps the login's
 * character set and the current database; other servers reset the character set to the
 * server default, so both are checked against the baseline and restored when they differ.
 * The reset and the check go out in one write (one round trip); a failed reset only makes
 * the check's answer moot. Resolves false when the connection cannot be made like new (it
 * is then closed).
 */
export async function resetMysqlConnection(conn: MysqlServerConnection, baseline: MysqlSessionBaseline, timeoutMs: number): Promise<boolean> {
  const [reset, check] = await conn.commands(RESET_AND_CHECK, timeoutMs);
  if (reset.error || !reset.ok) return false;
  const now = baselineOf(conn, check);
  if (sameSession(now, baseline)) return true;
  const charsetOk = now.charsetClient === baseline.charsetClient && now.charsetResults === baseline.charsetResults && now.collationConnection === baseline.collationConnection;
  const databaseOk = now.database === baseline.database;
  if (!charsetOk) {
    const cs = baseline.charsetClient;
    const coll = baseline.collationConnection;
    if (!cs || !coll || !IDENTIFIER.test(cs) || !IDENTIFIER.test(coll) || baseline.charsetResults !== cs) return false;
    const r = await conn.query(`SET NAMES ${cs} COLLATE ${coll}`, timeoutMs);
    if (r.error) return false;
  }
  if (!databaseOk) {
    // A session without a database cannot go back to none: discard it.
    if (baseline.database === null) return false;
    const r = await conn.command(encodeInitDb(baseline.database), timeoutMs);
    if (r.error) return false;
  }
  const after = await readBaseline(conn, timeoutMs);
  return sameSession(after, baseline);
}

function sameSession(a: MysqlSessionBaseline, b: MysqlSessionBaseline): boolean {
  return a.charsetClient === b.charsetClient && a.charsetResults === b.charsetResults && a.collationConnection === b.collationConnection && a.database === b.database;
}

/** The capability bits that tell pools apart: format-affecting ones the gateway can negotiate upstream. */
export function poolCapabilities(capabilities: number): number {
  return (formatCapabilities(capabilities) & ~(CLIENT_COMPRESS | CLIENT_LOCAL_FILES)) >>> 0;
}

/** The MySQL pools of the gateway's pool registry: one MysqlPool per (upstream settings, role, database, capabilities, collation). */
export class MysqlPoolRegistry {
  constructor(private readonly opts: MysqlPoolOptions = {}, readonly registry = new PoolRegistry(opts.clock)) {}

  get(upstream: UpstreamConfig, role: RoleConfig, database: string, capabilities: number, characterSet: number): MysqlPool {
    const key: MysqlPoolKey = { upstream, role, database, capabilities: poolCapabilities(capabilities), characterSet };
    return this.registry.get({ protocol: 'mysql', upstream, role, parts: [database, key.capabilities, characterSet], name: () => mysqlPoolName(key) },
      (clock) => new MysqlPool(key, { ...this.opts, clock })) as MysqlPool;
  }

  stats(): Record<string, PoolStats> {
    return this.registry.stats('mysql');
  }

  closeAll(): Promise<void> {
    return this.registry.closeAll('mysql');
  }
}
