import crypto from 'node:crypto';
import { Client } from 'pg';
import { startGatewayHarness, type PgHarness } from './harness';
import { pgConninfo, psql, run, spawnClient } from './clients';
import { waitFor } from '../helpers/waitFor';
import { PgServerConnection } from '../../src/postgres/serverConnection';

/**
 * End to end: real PostgreSQL requiring SCRAM, the dev OIDC issuer, the gateway, and real
 * clients (psql, node-postgres, psycopg2) connecting with an access token as the password.
 */
let h: PgHarness;

beforeAll(async () => {
  h = await startGatewayHarness({ protocol: 'postgres', pool: '{ maxConnections: 4, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 3s }' });
}, 120000);

afterAll(async () => {
  await h?.stop();
});

function pgClient(token: string, o: { user?: string; database?: string; application_name?: string } = {}): Client {
  return new Client({ host: '127.0.0.1', port: h.port, user: o.user ?? 'reader', database: o.database ?? 'app', password: token, application_name: o.application_name });
}

async function withClient<T>(token: string, fn: (c: Client) => Promise<T>, o: { user?: string; database?: string; application_name?: string } = {}): Promise<T> {
  const c = pgClient(token, o);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

test('psql logs in with a token and runs as the gateway-held upstream role', async () => {
  const token = await h.token();
  const r = await psql(h, token, 'select current_user, current_database(), count(*) from items');
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout.trim()).toBe('agent_ro|app|10');
  const accepted = await h.audit.waitFor((e) => e.event === 'connection_accepted' && e.role === 'reader');
  expect(accepted).toMatchObject({ sub: 'svc-reporting', cid: 'svc-reporting', grant: 'reporting-agents', upstream: 'app-pg', database: 'app', groups: ['db-readers'] });
  expect(typeof accepted.jti).toBe('string');
  await h.audit.waitFor((e) => e.event === 'query' && String(e.sql).includes('count(*) from items') && e.tag === 'SELECT 1');
  await h.audit.waitFor((e) => e.event === 'session_end' && e.sessionId === accepted.sessionId && e.reason === 'client_terminated');
});

test('a DBA sees the agent in pg_stat_activity through application_name', async () => {
  const token = await h.token();
  const name = await withClient(token, async (c) => {
    const r = await c.query('select application_name from pg_stat_activity where pid = pg_backend_pid()');
    return r.rows[0].application_name as string;
  }, { application_name: 'nightly-report' });
  expect(name).toBe('nightly-report (tokengate: svc-reporting)');
});

test('startup parameters (options -c, PGTZ) are replayed upstream and reported back', async () => {
  const token = await h.token();
  const c = new Client({ host: '127.0.0.1', port: h.port, user: 'reader', database: 'app', password: token, options: '-c DateStyle=ISO,DMY -c TimeZone=Asia/Tokyo -c search_path=public' });
  await c.connect();
  try {
    const r = await c.query("select current_setting('DateStyle') ds, current_setting('TimeZone') tz, current_setting('search_path') sp");
    expect(r.rows[0]).toEqual({ ds: 'ISO, DMY', tz: 'Asia/Tokyo', sp: 'public' });
  } finally {
    await c.end();
  }
  // libpq turns PGTZ into a startup parameter.
  const r = await psql(h, token, 'show timezone', { env: { PGTZ: 'Europe/Paris' } });
  expect(r.stdout.trim()).toBe('Europe/Paris');
  // psql reads server_version and client_encoding from the greeting's ParameterStatus messages.
  const v = await psql(h, token, 'select 1', { extra: ['-c', '\\echo :SERVER_VERSION_NAME :ENCODING'] });
  expect(v.stdout.trim().split('\n')[0]).toMatch(/^15\.\d+ .* UTF8$/);
});

test('node-postgres: simple and extended queries, named prepared statements, errors mid-transaction', async () => {
  const token = await h.token('0oa1svcbilling');
  await withClient(token, async (c) => {
    expect((await c.query('select current_user')).rows[0].current_user).toBe('agent_rw');
    const r1 = await c.query({ name: 'by-id', text: 'select name from items where id = $1', values: [3] });
    const r2 = await c.query({ name: 'by-id', text: 'select name from items where id = $1', values: [4] });
    expect([r1.rows[0].name, r2.rows[0].name]).toEqual(['item 3', 'item 4']);
    await c.query('begin');
    await expect(c.query('select 1/0')).rejects.toMatchObject({ code: '22012' });
    await expect(c.query('select 1')).rejects.toMatchObject({ code: '25P02' });
    await c.query('rollback');
    expect((await c.query('select 2 as two')).rows[0].two).toBe(2);
  }, { user: 'writer' });
  await h.audit.waitFor((e) => e.event === 'query' && e.sqlState === '22012');
  await h.audit.waitFor((e) => e.event === 'query' && String(e.sql).includes('select name from items where id = $1'));
});

test('upstream errors the audit cannot decode (over 64 KiB, not UTF-8) never break the session or the gateway', async () => {
  const token = await h.token();
  const r = await psql(h, token, "select repeat('x', 70000)::int", { extra: ['-c', "set client_encoding = 'LATIN1'", '-c', 'select chr(233)::int'] });
  expect(r.stderr).toMatch(/invalid input syntax for type integer/);
  const latin = await withClient(token, async (c) => {
    await c.query("set client_encoding = 'LATIN1'");
    await expect(c.query('select chr(233)::int')).rejects.toMatchObject({ code: '22P02' });
    await c.query("set client_encoding = 'UTF8'");
    await expect(c.query("select repeat('y', 70000)::int")).rejects.toMatchObject({ code: '22P02' });
    return (await c.query('select 7 as seven')).rows[0].seven;
  });
  expect(latin).toBe(7);
  await h.audit.waitFor((e) => e.event === 'query' && String(e.sql).includes("repeat('y', 70000)") && e.sqlState !== undefined);
});

test('a 100k-row result arrives intact (checksum)', async () => {
  const token = await h.token();
  await withClient(token, async (c) => {
    const r = await c.query("select g, md5(g::text) m from generate_series(1, 100000) g");
    expect(r.rows.length).toBe(100000);
    const local = crypto.createHash('sha256');
    for (const row of r.rows) local.update(`${row.g}:${row.m}\n`);
    const expected = crypto.createHash('sha256');
    for (let g = 1; g <= 100000; g++) expected.update(`${g}:${crypto.createHash('md5').update(String(g)).digest('hex')}\n`);
    expect(local.digest('hex')).toBe(expected.digest('hex'));
  });
});

test('COPY in and out through psql', async () => {
  const token = await h.token('0oa1svcbilling');
  const create = await psql(h, token, 'create table if not exists copytest (id int, note text)', { user: 'writer' });
  expect(create.stderr).toBe('');
  const lines = Array.from({ length: 5000 }, (_, i) => `${i}\tnote ${i}`).join('\n') + '\n';
  const copyIn = await run('psql', [`host=127.0.0.1 port=${h.port} user=writer dbname=app sslmode=disable`, '-X', '-At', '-c', '\\copy copytest from stdin'], { PGPASSWORD: token }, lines);
  expect(copyIn.stderr).toBe('');
  expect(copyIn.stdout.trim()).toBe('COPY 5000');
  const copyOut = await psql(h, token, 'copy (select * from copytest order by id) to stdout', { user: 'writer' });
  expect(copyOut.stdout).toBe(lines);
});

test('LISTEN/NOTIFY between two agents', async () => {
  const token = await h.token();
  const listener = pgClient(token);
  await listener.connect();
  try {
    const got = new Promise<string>((resolve) => listener.on('notification', (n) => resolve(n.payload ?? '')));
    await listener.query('listen jobs');
    await withClient(token, (c) => c.query("select pg_notify('jobs', 'hello from agent')"));
    await expect(got).resolves.toBe('hello from agent');
  } finally {
    await listener.end();
  }
});

test('a CancelRequest with the gateway-issued key cancels pg_sleep on the right upstream', async () => {
  const token = await h.token();
  const started = Date.now();
  const client = spawnClient('psql', [pgConninfo(h), '-X', '-c', 'select pg_sleep(30)'], { PGPASSWORD: token });
  await h.audit.waitFor((e) => e.event === 'connection_accepted' && Date.now() - started < 20000 && Number(new Date(String(e.timestamp))) >= started - 1000);
  // The statement must be running upstream before the cancel, or there is nothing to interrupt.
  await waitFor(async () => Number(await h.cluster.psql(`select count(*) from pg_stat_activity where usename = '${h.names.ro}' and state = 'active' and query = 'select pg_sleep(30)'`)) > 0, {
    what: 'pg_sleep(30) running on the upstream', timeoutMs: 10000, detail: client.output,
  });
  // psql sends a CancelRequest on SIGINT: signal this test's psql, by its PID.
  client.child.kill('SIGINT');
  const r = await client.result;
  expect(r.stderr).toMatch(/canceling statement due to user request/);
  expect(Date.now() - started).toBeLessThan(15000);
});

test('session isolation: SET and TEMP tables never leak across pooled sessions', async () => {
  const token = await h.token();
  for (let i = 0; i < 20; i++) {
    await withClient(token, async (c) => {
      const seen = await c.query("select current_setting('tg.marker', true) as marker, to_regclass('pg_temp.scratch') is not null as has_temp");
      // A reused backend keeps the custom GUC's placeholder, but RESET ALL empties it.
      expect(seen.rows[0].marker ?? '').toBe('');
      expect(seen.rows[0].has_temp).toBe(false);
      await c.query(`set tg.marker = 'session-${i}'`);
      await c.query('create temp table scratch (x int)');
      if (i % 3 === 0) await c.query('begin'); // leave a transaction open: the pool must roll it back
    });
  }
  // The pool reused connections rather than opening 20.
  const backends = await h.cluster.psql("select count(*) from pg_stat_activity where usename = 'agent_ro'");
  expect(Number(backends.trim())).toBeLessThanOrEqual(4);
});

test('the same login again on its pooled connection sends no SET; any other starts from DISCARD ALL, so settings never carry over', async () => {
  const token = await h.token();
  const internal = jest.spyOn(PgServerConnection.prototype, 'queries');
  // Releases finish after the client has gone: wait until every pooled connection is back, reset and idle.
  const settled = (): Promise<boolean> => waitFor(() => Object.values(h.gateway.pools.stats()).every((s) => s.active === 0 && s.idle === s.total), {
    what: 'every pooled upstream connection released and reset', timeoutMs: 10000, detail: () => JSON.stringify(h.gateway.pools.stats()),
  });
  const settings = async (options?: string): Promise<Record<string, string>> => {
    const c = new Client({ host: '127.0.0.1', port: h.port, user: 'reader', database: 'app', password: token, application_name: 'loop', options });
    await c.connect();
    try {
      const r = await c.query("select array_to_string(current_schemas(false), ' ') sp, current_setting('TimeZone') tz, application_name app from pg_stat_activity where pid = pg_backend_pid()");
      return r.rows[0] as Record<string, string>;
    } finally {
      await c.end();
    }
  };
  try {
    // A list setting keeps its elements, as in a direct login (two schemas, not one named "pg_catalog,public").
    const tokyo = { sp: 'pg_catalog public', tz: 'Asia/Tokyo', app: 'loop (tokengate: svc-reporting)' };
    await settled();
    const before = internal.mock.calls.length;
    for (let i = 0; i < 10; i++) {
      expect(await settings('-c search_path=pg_catalog,public -c TimeZone=Asia/Tokyo')).toEqual(tokyo);
      await settled();
    }
    // One pipelined DISCARD ALL + SET per release; a login adds one only where the connection
    // last served other settings (at most once per pooled connection: 4). Always SET-ing: 20.
    expect(internal.mock.calls.length - before).toBeLessThanOrEqual(10 + 4);
    // Other parameters: nothing of the previous login's settings is left.
    const plain = await settings();
    expect(plain.sp).toBe('public');
    expect(plain.tz).not.toBe('Asia/Tokyo');
    expect(plain.app).toBe('loop (tokengate: svc-reporting)');
  } finally {
    internal.mockRestore();
  }
});

test('psycopg2 (Debian python3) connects with a token', async () => {
  const token = await h.token();
  const script = `
import os, psycopg2
conn = psycopg2.connect(host='127.0.0.1', port=${h.port}, user='reader', dbname='analytics', password=os.environ['TOKEN'], sslmode='disable')
cur = conn.cursor()
cur.execute('select current_user, current_database(), %s::int + 1', (41,))
print('|'.join(str(v) for v in cur.fetchone()))
conn.close()
`;
  const r = await run('/usr/bin/python3', ['-c', script], { TOKEN: token });
  expect(r.stderr).toBe('');
  expect(r.stdout.trim()).toBe('agent_ro|analytics|42');
});

test('no token, password or client secret appears in any audit line', async () => {
  const joined = h.audit.lines.join('\n');
  expect(h.audit.lines.length).toBeGreaterThan(10);
  for (const secret of h.secrets) expect(joined).not.toContain(secret);
});
