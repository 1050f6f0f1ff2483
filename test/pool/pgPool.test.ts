import { Secret } from '../../src/config/secret';
import type { PoolConfig, RoleConfig, UpstreamConfig } from '../../src/config/schema';
import { PgPool, PgPoolRegistry, PoolExhaustedError } from '../../src/postgres/pool';
import { UpstreamLoginError } from '../../src/postgres/login';
import { PgCluster, startPgCluster } from '../helpers/pgCluster';
import { ManualClock } from '../helpers/manualClock';

let pg: PgCluster;
const pools: PgPool[] = [];

beforeAll(async () => {
  pg = await startPgCluster();
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  await pg?.stop();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function config(pool: Partial<PoolConfig> = {}, password?: string): { upstream: UpstreamConfig; role: RoleConfig } {
  const role: RoleConfig = { name: 'app_rw', user: 'tg_scram', password: new Secret(password ?? pg.passwords.tg_scram, 'test') };
  const upstream: UpstreamConfig = {
    name: 'main', protocol: 'postgres', host: pg.host, port: pg.port, tls: 'disable',
    pool: { maxConnections: 3, idleTimeoutMs: 60_000, maxLifetimeMs: 3_600_000, acquireTimeoutMs: 2_000, ...pool },
    databases: { app: 'app' }, roles: { app_rw: role },
  };
  return { upstream, role };
}

function makePool(pool: Partial<PoolConfig> = {}, janitorIntervalMs = 50, clock?: ManualClock): PgPool {
  const { upstream, role } = config(pool);
  const p = new PgPool({ upstream, role, database: 'app' }, { connectTimeoutMs: 5000, janitorIntervalMs, clock });
  pools.push(p);
  return p;
}

async function one(conn: { query(sql: string, t: number): Promise<{ rows: Array<Array<string | null>>; error?: unknown }> }, sql: string): Promise<string | null> {
  const r = await conn.query(sql, 2000);
  expect(r.error).toBeUndefined();
  return r.rows[0]?.[0] ?? null;
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(20);
  }
}

describe('PgPool against a real PostgreSQL 15', () => {
  test('reuses the same backend after release, and DISCARD ALL clears SET and TEMP tables', async () => {
    const pool = makePool();
    const a = await pool.acquire();
    expect(pool.stats()).toEqual({ total: 1, idle: 0, active: 1, waiting: 0 });
    await one(a, `set statement_timeout = '1234ms'`);
    await one(a, 'create temp table scratch (x int)');
    await one(a, 'prepare p1 as select 1');
    expect(await one(a, 'show statement_timeout')).toBe('1234ms');
    pool.release(a, true);
    await until(() => pool.stats().idle === 1);

    const b = await pool.acquire();
    expect(b).toBe(a);
    expect(await one(b, 'select pg_backend_pid()')).toBe(String(a.processId));
    expect(await one(b, 'show statement_timeout')).toBe('0');
    expect(await one(b, `select count(*) from pg_tables where tablename = 'scratch'`)).toBe('0');
    expect(await one(b, 'select count(*) from pg_prepared_statements')).toBe('0');
    expect(await one(b, 'show application_name')).toBe('tokengate');
    pool.release(b, true);
  });

  test('an open (and a failed) transaction is rolled back on release', async () => {
    const pool = makePool();
    await pg.psql('create table if not exists t_rollback (x int)', 'app');
    await pg.psql('grant all on t_rollback to tg_scram', 'app');
    const a = await pool.acquire();
    await one(a, 'begin');
    await one(a, 'insert into t_rollback values (1)');
    expect(a.txStatus).toBe('T');
    pool.release(a, true);
    await until(() => pool.stats().idle === 1);
    expect(a.txStatus).toBe('I');
    expect(await pg.psql('select count(*) from t_rollback', 'app')).toBe('0');

    const b = await pool.acquire();
    expect(b).toBe(a);
    await one(b, 'begin');
    expect((await b.query('select 1/0', 2000)).error?.code).toBe('22012');
    expect(b.txStatus).toBe('E');
    pool.release(b, true);
    await until(() => pool.stats().idle === 1);
    const c = await pool.acquire();
    expect(c).toBe(a);
    expect(c.txStatus).toBe('I');
    pool.release(c, true);
  });

  test('reusable=false closes the connection', async () => {
    const pool = makePool();
    const a = await pool.acquire();
    const pid = a.processId;
    pool.release(a, false);
    expect(pool.stats()).toEqual({ total: 0, idle: 0, active: 0, waiting: 0 });
    await until(() => a.broken);
    const gone = async (): Promise<boolean> => (await pg.psql(`select count(*) from pg_stat_activity where pid = ${pid}`)) === '0';
    const end = Date.now() + 3000;
    while (!(await gone()) && Date.now() < end) await sleep(50);
    expect(await gone()).toBe(true);
    const b = await pool.acquire();
    expect(b.processId).not.toBe(pid);
    pool.release(b, true);
  });

  test('a detached connection that was not handed back is closed, not reused', async () => {
    const pool = makePool();
    const a = await pool.acquire();
    a.detach();
    pool.release(a, true);
    expect(pool.stats().total).toBe(0);
    await until(() => a.broken);
  });

  test('maxConnections caps the pool; waiters are served FIFO, then PoolExhaustedError after acquireTimeout', async () => {
    const pool = makePool({ maxConnections: 2, acquireTimeoutMs: 300 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    expect(pool.stats()).toEqual({ total: 2, idle: 0, active: 2, waiting: 0 });

    const order: string[] = [];
    const w1 = pool.acquire().then((c) => (order.push('w1'), c));
    const w2 = pool.acquire().then((c) => (order.push('w2'), c));
    expect(pool.stats().waiting).toBe(2);
    pool.release(a, true);
    const c1 = await w1;
    expect(c1).toBe(a);
    pool.release(b, true);
    const c2 = await w2;
    expect(c2).toBe(b);
    expect(order).toEqual(['w1', 'w2']);

    const started = Date.now();
    const err = await pool.acquire().catch((e: unknown) => e);
    const waited = Date.now() - started;
    expect(err).toBeInstanceOf(PoolExhaustedError);
    expect(waited).toBeGreaterThanOrEqual(280);
    const e = err as PoolExhaustedError;
    expect(e.maxConnections).toBe(2);
    expect(e.message).toMatch(/All 2 upstream connections of pool main\/app_rw\/app are in use; waited \d+ ms/);
    expect(e.message).toContain('pool.acquireTimeout,'); // the config key, not the internal field name
    expect(e.message).not.toContain('acquireTimeoutMs');
    expect(e.message).toMatch(/maxConnections/);
    expect(pool.stats()).toEqual({ total: 2, idle: 0, active: 2, waiting: 0 });
    expect(Number(await pg.psql(`select count(*) from pg_stat_activity where usename = 'tg_scram' and application_name = 'tokengate' and pid in (${c1.processId}, ${c2.processId})`))).toBe(2);
    pool.release(c1, false);
    pool.release(c2, false);
  });

  test('idleTimeout closes idle connections', async () => {
    const clock = new ManualClock();
    const pool = makePool({ idleTimeoutMs: 200 }, 50, clock);
    const a = await pool.acquire();
    pool.release(a, true);
    await until(() => pool.stats().idle === 1);
    clock.advance(100);
    expect(pool.stats().idle).toBe(1);
    clock.advance(150);
    await until(() => pool.stats().total === 0, 2000);
    await until(() => a.broken);
    const b = await pool.acquire();
    expect(b).not.toBe(a);
    pool.release(b, true);
  });

  test('maxLifetime retires a connection on release and when found idle', async () => {
    const clock = new ManualClock();
    const pool = makePool({ maxLifetimeMs: 300 }, 60_000, clock); // janitor effectively off: test the acquire/release paths
    const a = await pool.acquire();
    pool.release(a, true);
    await until(() => pool.stats().idle === 1);
    clock.advance(350);
    const b = await pool.acquire(); // a is expired while idle: skipped and closed
    expect(b).not.toBe(a);
    expect(a.broken).toBe(true);
    clock.advance(350);
    pool.release(b, true); // expired on release: closed without reset
    expect(pool.stats().total).toBe(0);
    expect(b.broken).toBe(true);

    const sweptClock = new ManualClock();
    const swept = makePool({ maxLifetimeMs: 200 }, 50, sweptClock);
    const c = await swept.acquire();
    swept.release(c, true);
    await until(() => swept.stats().idle === 1);
    sweptClock.advance(250);
    await until(() => swept.stats().total === 0, 2000);
  });

  test('a backend terminated while idle is evicted and replaced', async () => {
    const pool = makePool({}, 60_000);
    const a = await pool.acquire();
    pool.release(a, true);
    await until(() => pool.stats().idle === 1);
    await pg.psql(`select pg_terminate_backend(${a.processId})`);
    await until(() => a.broken);
    const b = await pool.acquire();
    expect(b).not.toBe(a);
    expect(b.processId).not.toBe(a.processId);
    expect(await one(b, 'select 1')).toBe('1');
    expect(pool.stats()).toEqual({ total: 1, idle: 0, active: 1, waiting: 0 });
    pool.release(b, true);
  });

  test('a backend terminated while in use is closed on release', async () => {
    const pool = makePool();
    const a = await pool.acquire();
    await pg.psql(`select pg_terminate_backend(${a.processId})`);
    await until(() => a.broken);
    pool.release(a, true);
    expect(pool.stats().total).toBe(0);
  });

  test('a failing login frees its slot and reaches the caller', async () => {
    const { upstream, role } = config({ maxConnections: 1 }, 'wrong-password');
    const pool = new PgPool({ upstream, role, database: 'app' });
    pools.push(pool);
    await expect(pool.acquire()).rejects.toMatchObject({ name: 'UpstreamLoginError', sqlState: '28P01' });
    await expect(pool.acquire()).rejects.toBeInstanceOf(UpstreamLoginError);
    expect(pool.stats().total).toBe(0);
  });
});

describe('PgPoolRegistry', () => {
  test('one pool per (upstream, role, database); stats and closeAll', async () => {
    const reg = new PgPoolRegistry({ connectTimeoutMs: 5000 });
    const { upstream, role } = config();
    const p1 = reg.get(upstream, role, 'app');
    expect(reg.get(upstream, role, 'app')).toBe(p1);
    const p2 = reg.get(upstream, role, 'postgres');
    expect(p2).not.toBe(p1);
    const c = await p1.acquire();
    expect(reg.stats()).toEqual({
      'main/app_rw/app': { total: 1, idle: 0, active: 1, waiting: 0 },
      'main/app_rw/postgres': { total: 0, idle: 0, active: 0, waiting: 0 },
    });
    p1.release(c, true);
    await until(() => p1.stats().idle === 1);
    await reg.closeAll();
    await until(() => c.broken);
    await expect(p1.acquire()).rejects.toThrow(/shutting down/);
  });
});
