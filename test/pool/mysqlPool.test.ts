import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLIENT_COMPRESS, CLIENT_DEPRECATE_EOF, CLIENT_INTERACTIVE, CLIENT_LOCAL_FILES, CLIENT_SSL, FORMAT_CAPABILITIES, GATEWAY_CAPABILITIES } from '../../protocols/mysql';
import { Secret } from '../../src/config/secret';
import type { PoolConfig, RoleConfig, UpstreamConfig } from '../../src/config/types';
import { MysqlPool, MysqlPoolRegistry, PoolExhaustedError, mysqlPoolName, probeMysqlServerVersion, resetMysqlConnection } from '../../src/mysql/pool';
import { MysqlLoginError } from '../../src/mysql/login';
import type { MysqlServerConnection } from '../../src/mysql/serverConnection';
import { ManualClock } from '../helpers/manualClock';

/** Against the machine's MariaDB 10.11 on 127.0.0.1:3306. */

const run = promisify(execFile);
async function rootSql(sql: string): Promise<string> {
  const { stdout } = await run('mariadb', ['--no-defaults', '-uroot', '-h127.0.0.1', '-P3306', '-N', '-B', '-e', sql]);
  return stdout.trim();
}

const USER = 'tg_h6_pool';
const PASSWORD = 'Pool-pw-a81c3f';
const DB = 'tg_h6_pool_db';
const OTHER_DB = 'tg_h6_pool_other';
const CAPS = (GATEWAY_CAPABILITIES & FORMAT_CAPABILITIES) >>> 0;
const UNICODE_CI = 224; // utf8mb4_unicode_ci: not the server default, so a reset that lost it would show
const pools: MysqlPool[] = [];

beforeAll(async () => {
  await rootSql(`
    DROP USER IF EXISTS '${USER}'@'%';
    CREATE DATABASE IF NOT EXISTS ${DB};
    CREATE DATABASE IF NOT EXISTS ${OTHER_DB};
    CREATE TABLE IF NOT EXISTS ${DB}.t_tx (id INT) ENGINE=InnoDB;
    CREATE TABLE IF NOT EXISTS ${DB}.t_text (v VARCHAR(20)) CHARACTER SET utf8mb4;
    CREATE USER '${USER}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('${PASSWORD}');
    GRANT ALL ON ${DB}.* TO '${USER}'@'%';
    GRANT ALL ON ${OTHER_DB}.* TO '${USER}'@'%';`);
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  await rootSql(`DROP USER IF EXISTS '${USER}'@'%'; DROP DATABASE IF EXISTS ${DB}; DROP DATABASE IF EXISTS ${OTHER_DB};`);
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function config(pool: Partial<PoolConfig> = {}, password = PASSWORD): { upstream: UpstreamConfig; role: RoleConfig } {
  const role: RoleConfig = { name: 'app_rw', user: USER, password: new Secret(password, 'test') };
  const upstream: UpstreamConfig = {
    name: 'maria', protocol: 'mysql', host: '127.0.0.1', port: 3306, tls: 'disable',
    pool: { maxConnections: 3, idleTimeoutMs: 60_000, maxLifetimeMs: 3_600_000, acquireTimeoutMs: 2_000, ...pool },
    databases: { app: DB }, roles: { app_rw: role },
  };
  return { upstream, role };
}

function makePool(pool: Partial<PoolConfig> = {}, over: { database?: string; password?: string; characterSet?: number; clock?: ManualClock } = {}): MysqlPool {
  const { upstream, role } = config(pool, over.password);
  const p = new MysqlPool(
    { upstream, role, database: over.database ?? DB, capabilities: CAPS, characterSet: over.characterSet ?? UNICODE_CI },
    { connectTimeoutMs: 5000, janitorIntervalMs: 50, clock: over.clock },
  );
  pools.push(p);
  return p;
}

async function one(conn: MysqlServerConnection, sql: string): Promise<string | null> {
  const r = await conn.query(sql, 3000);
  expect(r.error).toBeUndefined();
  return r.rows?.[0]?.[0] ?? null;
}

async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(20);
  }
}

const threadAlive = async (threadId: number): Promise<boolean> =>
  (await rootSql(`SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ${threadId}`)) === '1';

describe('MysqlPool against the real MariaDB', () => {
  test('reuses the same upstream session, and the reset clears variables, temp tables, statements, locks and the transaction', async () => {
    const pool = makePool();
    const a = await pool.acquire();
    expect(pool.stats()).toEqual({ total: 1, idle: 0, active: 1, waiting: 0 });
    await one(a, 'SET @leftover = 42');
    await one(a, 'CREATE TEMPORARY TABLE scratch (x INT)');
    await one(a, "PREPARE stmt FROM 'SELECT 1'");
    expect(await one(a, "SELECT GET_LOCK('tg_h6_pool_lock', 0)")).toBe('1');
    await one(a, 'SET SESSION sql_mode = "ANSI_QUOTES"');
    await one(a, 'START TRANSACTION');
    await one(a, 'INSERT INTO t_tx VALUES (1)');
    expect(a.statusFlags & 0x0001).toBe(0x0001); // in a transaction
    pool.release(a, true);
    await until(() => pool.stats().idle === 1);

    const b = await pool.acquire();
    expect(b).toBe(a);
    expect(await one(b, 'SELECT CONNECTION_ID()')).toBe(String(a.threadId));
    expect(await one(b, 'SELECT @leftover')).toBeNull();
    expect((await b.query('SELECT * FROM scratch', 3000)).error?.code).toBe(1146); // no such table
    expect((await b.query('EXECUTE stmt', 3000)).error?.code).toBe(1243); // unknown prepared statement
    expect(await rootSql("SELECT IS_FREE_LOCK('tg_h6_pool_lock')")).toBe('1');
    expect(await one(b, 'SELECT @@session.sql_mode')).toBe(await rootSql('SELECT @@global.sql_mode'));
    expect(await rootSql(`SELECT COUNT(*) FROM ${DB}.t_tx`)).toBe('0'); // rolled back
    expect(b.statusFlags & 0x0001).toBe(0);
    pool.release(b, true);
  });

  test('the character set of the login survives the reset: utf8mb4 round trip after the client changed it', async () => {
    const pool = makePool();
    const a = await pool.acquire();
    expect(await one(a, 'SELECT @@collation_connection')).toBe('utf8mb4_unicode_ci');
    await one(a, 'SET NAMES latin1');
    expect(await one(a, 'SELECT @@character_set_client')).toBe('latin1');
    pool.release(a, true);
    await until(() => pool.stats().idle === 1);

    const b = await pool.acquire();
    expect(b).toBe(a);
    expect((await b.query('SELECT @@character_set_client, @@character_set_connection, @@character_set_results, @@collation_connection', 3000)).rows).toEqual([
      ['utf8mb4', 'utf8mb4', 'utf8mb4', 'utf8mb4_unicode_ci'],
    ]);
    const text = 'ä€😀';
    expect(await one(b, `SELECT HEX('${text}')`)).toBe(Buffer.from(text).toString('hex').toUpperCase());
    await one(b, 'DELETE FROM t_text');
    await one(b, `INSERT INTO t_text VALUES ('${text}')`);
    expect(await one(b, 'SELECT v FROM t_text')).toBe(text);
    pool.release(b, true);
  });

  test('the database is selected again after the client changed it (USE / COM_INIT_DB)', async () => {
    const pool = makePool();
    const a = await pool.acquire();
    await one(a, `USE ${OTHER_DB}`);
    pool.release(a, true);
    await until(() => pool.stats().idle === 1);
    const b = await pool.acquire();
    expect(b).toBe(a);
    expect(await one(b, 'SELECT DATABASE()')).toBe(DB);
    pool.release(b, true);
  });

  test('resetMysqlConnection restores a character set and database the reset did not keep', async () => {
    const pool = makePool();
    const a = await pool.acquire();
    // MariaDB keeps both across COM_RESET_CONNECTION; other servers do not. Pretend the login had
    // been latin1 in OTHER_DB, so the restore path runs against the real server.
    const ok = await resetMysqlConnection(a, { charsetClient: 'latin1', charsetResults: 'latin1', collationConnection: 'latin1_swedish_ci', database: OTHER_DB }, 3000);
    expect(ok).toBe(true);
    expect((await a.query('SELECT @@character_set_client, @@character_set_results, @@collation_connection, DATABASE()', 3000)).rows).toEqual([
      ['latin1', 'latin1', 'latin1_swedish_ci', OTHER_DB],
    ]);
    // A session that had no database cannot go back to none.
    expect(await resetMysqlConnection(a, { charsetClient: 'latin1', charsetResults: 'latin1', collationConnection: 'latin1_swedish_ci', database: null }, 3000)).toBe(false);
    pool.release(a, false);
  });

  test('a pool without a database discards a session the client put into one', async () => {
    const pool = makePool({}, { database: '' });
    const a = await pool.acquire();
    expect(await one(a, 'SELECT DATABASE()')).toBeNull();
    pool.release(a, true);
    await until(() => pool.stats().idle === 1);
    const b = await pool.acquire();
    expect(b).toBe(a);
    await one(b, `USE ${DB}`);
    pool.release(b, true);
    await until(() => pool.stats().total === 0);
    expect(b.broken).toBe(true);
    await until(async () => !(await threadAlive(b.threadId)));
  });

  test('maxConnections and acquireTimeout: PoolExhaustedError, and a waiter gets the released session', async () => {
    const pool = makePool({ maxConnections: 2, acquireTimeoutMs: 300 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    expect(a.threadId).not.toBe(b.threadId);
    const started = Date.now();
    const err = (await pool.acquire().catch((e: unknown) => e)) as PoolExhaustedError;
    expect(err).toBeInstanceOf(PoolExhaustedError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(err.message).toMatch(/All 2 upstream connections of pool maria\/app_rw\/tg_h6_pool_db\/caps=0x[0-9a-f]+\/collation=224 are in use/);
    expect(pool.stats()).toEqual({ total: 2, idle: 0, active: 2, waiting: 0 });

    const waiting = pool.acquire();
    expect(pool.stats().waiting).toBe(1);
    pool.release(a, true);
    const c = await waiting;
    expect(c).toBe(a);
    pool.release(b, true);
    pool.release(c, true);
  });

  test('idle connections are closed after idleTimeout', async () => {
    const clock = new ManualClock();
    const pool = makePool({ idleTimeoutMs: 300 }, { clock });
    const a = await pool.acquire();
    pool.release(a, true);
    await until(() => pool.stats().idle === 1);
    clock.advance(350);
    await until(() => pool.stats().total === 0, 5000);
    expect(a.broken).toBe(true);
    await until(async () => !(await threadAlive(a.threadId)));
  });

  test('connections older than maxLifetime are closed instead of reused', async () => {
    const clock = new ManualClock();
    const pool = makePool({ maxLifetimeMs: 400 }, { clock });
    const a = await pool.acquire();
    clock.advance(600);
    pool.release(a, true);
    expect(pool.stats().total).toBe(0);
    const b = await pool.acquire();
    expect(b.threadId).not.toBe(a.threadId);
    pool.release(b, true);
  });

  test('a session killed on the server is evicted, idle or active', async () => {
    const pool = makePool();
    const a = await pool.acquire();
    pool.release(a, true);
    await until(() => pool.stats().idle === 1);
    await rootSql(`KILL ${a.threadId}`);
    await until(() => a.broken);
    const b = await pool.acquire();
    expect(b).not.toBe(a);
    expect(await one(b, 'SELECT CONNECTION_ID()')).toBe(String(b.threadId));

    await rootSql(`KILL ${b.threadId}`);
    await until(() => b.broken);
    pool.release(b, true);
    expect(pool.stats().total).toBe(0);
  });

  test('release(conn, false) and a still-detached connection are closed, not reused', async () => {
    const pool = makePool();
    const a = await pool.acquire();
    pool.release(a, false);
    expect(pool.stats().total).toBe(0);
    expect(a.broken).toBe(true);
    const b = await pool.acquire();
    b.detach();
    pool.release(b, true);
    expect(pool.stats().total).toBe(0);
    expect(b.broken).toBe(true);
  });

  test('a login failure frees the slot and reaches the caller as MysqlLoginError', async () => {
    const pool = makePool({ maxConnections: 1 }, { password: 'wrong-password' });
    const err = (await pool.acquire().catch((e: unknown) => e)) as MysqlLoginError;
    expect(err).toBeInstanceOf(MysqlLoginError);
    expect(err.code).toBe(1045);
    expect(pool.stats().total).toBe(0);
  });
});

describe('MysqlPoolRegistry', () => {
  test('one pool per upstream/role/database/format capabilities/collation', async () => {
    const reg = new MysqlPoolRegistry({ connectTimeoutMs: 5000 });
    const { upstream, role } = config();
    const p1 = reg.get(upstream, role, DB, CAPS, 45);
    // Bits that do not change the packet format do not split pools.
    expect(reg.get(upstream, role, DB, (CAPS | CLIENT_SSL | CLIENT_INTERACTIVE) >>> 0, 45)).toBe(p1);
    // Nor do COMPRESS / LOCAL_FILES, which are never negotiated upstream.
    expect(reg.get(upstream, role, DB, (CAPS | CLIENT_COMPRESS | CLIENT_LOCAL_FILES) >>> 0, 45)).toBe(p1);
    const noEof = reg.get(upstream, role, DB, CAPS & ~CLIENT_DEPRECATE_EOF, 45);
    expect(noEof).not.toBe(p1);
    expect(reg.get(upstream, role, DB, CAPS, 224)).not.toBe(p1);
    expect(reg.get(upstream, role, OTHER_DB, CAPS, 45)).not.toBe(p1);
    expect(p1.name).toBe(mysqlPoolName(p1.key));

    const c = await noEof.acquire();
    expect(c.capabilities & CLIENT_DEPRECATE_EOF).toBe(0);
    expect(await one(c, 'SELECT 1')).toBe('1');
    expect(reg.stats()[noEof.name]).toEqual({ total: 1, idle: 0, active: 1, waiting: 0 });
    noEof.release(c, true);
    await until(() => noEof.stats().idle === 1);
    await reg.closeAll();
    expect(c.broken).toBe(true);
    expect(reg.stats()).toEqual({});
    await expect(noEof.acquire()).rejects.toThrow(/shutting down/);
  });

  test('probeMysqlServerVersion is exported for the listener', async () => {
    expect(await probeMysqlServerVersion('127.0.0.1', 3306, 3000)).toMatch(/MariaDB/);
  });
});
