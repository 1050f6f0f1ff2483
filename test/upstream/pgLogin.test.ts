import { serialize } from 'pg-protocol';
import { Secret } from '../../src/config/secret';
import { connectPgUpstream, PgLoginOptions, UpstreamLoginError } from '../../src/postgres/login';
import { PgServerConnection } from '../../src/postgres/serverConnection';
import { SaltedPasswordCache } from '../../src/postgres/saltedPasswordCache';
import { PgCluster, startPgCluster } from '../helpers/pgCluster';
import { recordWrites } from '../helpers/socketWrites';
import { waitFor } from '../helpers/waitFor';

let pg: PgCluster;
const open: PgServerConnection[] = [];

beforeAll(async () => {
  pg = await startPgCluster();
});
afterAll(async () => {
  for (const c of open) c.close();
  await pg?.stop();
});

function opts(user: keyof PgCluster['passwords'], over: Partial<PgLoginOptions> = {}): PgLoginOptions {
  return {
    host: pg.host, port: pg.port, tls: 'disable', user, password: new Secret(pg.passwords[user], 'test'),
    database: 'app', parameters: { application_name: 'tg-test' }, connectTimeoutMs: 5000, ...over,
  };
}

async function login(o: PgLoginOptions): Promise<PgServerConnection> {
  const c = await connectPgUpstream(o);
  open.push(c);
  return c;
}

/** Whether backend `pid` is running `sql` now (so a cancel has something to interrupt). */
async function runningOn(pid: number, sql: string): Promise<boolean> {
  return (await pg.psql(`select count(*) from pg_stat_activity where pid = ${pid} and state = 'active' and query = '${sql}'`)) === '1';
}

function sessionUser(pid: number): Promise<string> {
  return pg.psql(`select usename from pg_stat_activity where pid = ${pid}`);
}

describe('connectPgUpstream against a real PostgreSQL 15', () => {
  test.each(['tg_scram', 'tg_md5', 'tg_plain', 'tg_trust'] as const)('logs in as %s', async (user) => {
    const c = await login(opts(user));
    expect(c.processId).toBeGreaterThan(0);
    expect(c.secretKey.length).toBe(4);
    expect(c.txStatus).toBe('I');
    expect(c.parameters.get('server_version')).toMatch(/^15\./);
    expect(c.parameters.get('application_name')).toBe('tg-test');
    expect(c.parameters.get('session_authorization')).toBe(user);
    expect(c.broken).toBe(false);
    expect(await sessionUser(c.processId)).toBe(user);
  });

  test('the cluster really requires the intended method for each role', async () => {
    const stored = await pg.psql(`select rolname || ':' || left(rolpassword, 5) from pg_authid where rolname in ('tg_scram','tg_md5') order by 1`);
    expect(stored).toMatch(/^tg_md5:md5[0-9a-f]{2}\ntg_scram:SCRAM$/);
    expect(await pg.psql(`select type || ':' || user_name::text || ':' || auth_method from pg_hba_file_rules where type = 'host' order by line_number`))
      .toBe(['host:{tg_trust}:trust', 'host:{tg_md5}:md5', 'host:{tg_plain}:password', 'host:{all}:scram-sha-256'].join('\n'));
  });

  test('SCRAM derives the salted password once per (password, salt, iterations)', async () => {
    const cache = new SaltedPasswordCache();
    await login(opts('tg_scram', { saltedPasswordCache: cache }));
    await login(opts('tg_scram', { saltedPasswordCache: cache }));
    expect(cache.derivations).toBe(1);
    expect(cache.size).toBe(1);
  });

  test.each(['tg_scram', 'tg_md5', 'tg_plain'] as const)('a wrong password for %s is 28P01 and never echoed', async (user) => {
    const bad = 'wrong-Pa55word-xyz';
    const err = await connectPgUpstream(opts(user, { password: new Secret(bad, 'test') })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamLoginError);
    const e = err as UpstreamLoginError;
    expect(e.sqlState).toBe('28P01');
    expect(e.message).toContain('password authentication failed');
    expect(e.message).not.toContain(bad);
    expect(e.message).not.toContain(pg.passwords[user]);
  });

  test('an unknown database is reported with its SQLSTATE', async () => {
    const err = (await connectPgUpstream(opts('tg_scram', { database: 'nope' })).catch((e: unknown) => e)) as UpstreamLoginError;
    expect(err).toBeInstanceOf(UpstreamLoginError);
    expect(err.sqlState).toBe('3D000');
  });

  test('a closed port fails fast with a clear message', async () => {
    const err = (await connectPgUpstream(opts('tg_scram', { port: 1 })).catch((e: unknown) => e)) as UpstreamLoginError;
    expect(err).toBeInstanceOf(UpstreamLoginError);
    expect(err.message).toMatch(/Cannot connect to upstream PostgreSQL tg_scram@127\.0\.0\.1:1\/app: .*ECONNREFUSED/);
  });

  test('tls require against a server without ssl fails; prefer falls back to plaintext', async () => {
    const err = (await connectPgUpstream(opts('tg_scram', { tls: 'require' })).catch((e: unknown) => e)) as UpstreamLoginError;
    expect(err).toBeInstanceOf(UpstreamLoginError);
    expect(err.message).toMatch(/does not accept TLS, but tls is "require"/);
    const c = await login(opts('tg_scram', { tls: 'prefer' }));
    expect(c.socket.constructor.name).toBe('Socket');
    expect((await c.query('select 1', 2000)).rows).toEqual([['1']]);
  });

  test('query() returns rows, errors, and tracks txStatus and ParameterStatus', async () => {
    const c = await login(opts('tg_scram'));
    const r = await c.query(`select 1 as a, null::text as b; select 'x'`, 2000);
    expect(r.error).toBeUndefined();
    expect(r.rows).toEqual([['1', null], ['x']]);
    expect(r.commandTags).toEqual(['SELECT 1', 'SELECT 1']);

    expect((await c.query('begin', 2000)).error).toBeUndefined();
    expect(c.txStatus).toBe('T');
    const bad = await c.query('select nope', 2000);
    expect(bad.error).toMatchObject({ code: '42703', severity: 'ERROR' });
    expect(bad.error?.message).toMatch(/column "nope" does not exist/);
    expect(c.txStatus).toBe('E');
    await c.query('rollback', 2000);
    expect(c.txStatus).toBe('I');

    await c.query(`set application_name = 'changed'`, 2000);
    expect(c.parameters.get('application_name')).toBe('changed');
    expect(c.broken).toBe(false);
  });

  test('queries() pipelines: one write, one result per query in order; a failing query does not stop the next', async () => {
    const c = await login(opts('tg_scram'));
    const writes = recordWrites(c.socket);
    const [set, bad, list] = await c.queries([
      "select pg_catalog.set_config('search_path', 'pg_catalog,public', false)",
      'select nope',
      "select array_to_string(current_schemas(false), ' ')",
    ], 2000);
    expect(writes).toHaveLength(1);
    expect(set.error).toBeUndefined();
    expect(bad.error).toMatchObject({ code: '42703' });
    expect(list.rows).toEqual([['pg_catalog public']]); // set_config keeps the list's elements
    expect(c.txStatus).toBe('I');
    expect((await c.query('select 2', 2000)).rows).toEqual([['2']]);
  });

  test('query() times out, rejects and marks the connection broken', async () => {
    const c = await login(opts('tg_scram'));
    await expect(c.query('select pg_sleep(2)', 200)).rejects.toThrow(/within 200 ms/);
    expect(c.broken).toBe(true);
    c.close();
  });

  test('a backend terminated while idle is seen as broken', async () => {
    const c = await login(opts('tg_scram'));
    await pg.psql(`select pg_terminate_backend(${c.processId})`);
    await waitFor(() => c.broken, { what: 'the connection to notice its backend was terminated' });
    expect(c.broken).toBe(true);
    await expect(c.query('select 1', 1000)).rejects.toThrow(/broken/);
  });

  test('cancel() interrupts a query running on a detached connection', async () => {
    const c = await login(opts('tg_scram'));
    const leftover = c.detach();
    expect(leftover.length).toBe(0);
    // Act as the relay: own the socket, send a query, watch for ReadyForQuery.
    const chunks: Buffer[] = [];
    const done = new Promise<string>((resolve) => {
      c.socket.on('data', function onData(chunk: Buffer) {
        chunks.push(chunk);
        const all = Buffer.concat(chunks);
        if (all.length >= 6 && all[all.length - 6] === 0x5a) {
          c.socket.removeListener('data', onData);
          resolve(all.toString('latin1'));
        }
      });
    });
    // No socket.resume(): adding the relay's 'data' listener resumes the detached socket.
    const started = Date.now();
    c.socket.write(serialize.query('select pg_sleep(10)'));
    await waitFor(() => runningOn(c.processId, 'select pg_sleep(10)'), { what: 'pg_sleep(10) running on the backend' });
    await c.cancel();
    const reply = await done;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(reply).toContain('57014'); // query_canceled
    c.attach('I');
    expect((await c.query('select 2', 2000)).rows).toEqual([['2']]);
  });
});
