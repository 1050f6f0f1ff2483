import type mysql from 'mysql2/promise';
import { waitFor } from '../helpers/waitFor';
import { connectMysql2, mariadbCli, spawnClient } from '../integration/clients';
import { startGatewayHarness, type MysqlHarness } from '../integration/harness';
import { adminFiles, call } from './adminClient';

/** The admin API over MySQL sessions: list, kill (error 1927), revocation (1045 on reconnect). */

const files = adminFiles();
let h: MysqlHarness;

beforeAll(async () => {
  h = await startGatewayHarness({ protocol: 'mysql', admin: true, extraYaml: files.yaml });
}, 60000);
afterAll(async () => {
  await h?.stop();
  files.cleanup();
});

const connect = async (token: string): Promise<mysql.Connection> => {
  const c = await connectMysql2(h, token);
  c.on('error', () => undefined);
  return c;
};

test('GET /sessions lists a mysql2 session and a mariadb CLI session, filtered by protocol', async () => {
  const c = await connect(await h.token());
  const cli = spawnClient('mariadb', ['--no-defaults', '-h127.0.0.1', `-P${h.port}`, '-ureader', '-Dapp', '--skip-ssl', '--batch', '-e', 'select sleep(30)'], { MYSQL_PWD: await h.token() });
  await waitFor(() => h.gateway.sessions.select({ protocol: 'mysql' }).filter((s) => s.info().state === 'active').length === 1, { what: 'the CLI query to run', timeoutMs: 10000 });
  const r = await call(h.gateway, 'GET', '/sessions?protocol=mysql&sub=svc-reporting', { bearer: files.token });
  expect(r.body.sessions).toHaveLength(2);
  expect(r.body.sessions.map((s: { state: string }) => s.state).sort()).toEqual(['active', 'idle']);
  const active = r.body.sessions.find((s: { state: string }) => s.state === 'active');
  expect(active).toMatchObject({ protocol: 'mysql', grant: 'reporting-agents', role: 'reader', database: 'app', upstream: 'app-my' });
  expect(Date.parse(active.queryStartedAt)).toBeLessThanOrEqual(Date.now());
  expect((await call(h.gateway, 'GET', '/sessions?protocol=postgres', { bearer: files.token })).body.sessions).toEqual([]);

  // The CLI's session killed through the API: mariadb reports error 1927.
  const kill = await call(h.gateway, 'DELETE', `/sessions/${active.id}`, { bearer: files.token });
  expect(kill.status).toBe(200);
  const out = await cli.result;
  expect(out.code).not.toBe(0);
  expect(out.stderr).toMatch(/ERROR 1927 .*an operator ended this session/);
  expect(await h.audit.waitFor((x) => x.event === 'session_end' && x.sessionId === active.id)).toMatchObject({ reason: 'killed', endedBy: 'admin' });
  await c.end();
});

test('DELETE /sessions/{id} ends a mysql2 session with error 1927', async () => {
  const c = await connect(await h.token());
  const [s] = h.gateway.sessions.select({ protocol: 'mysql' });
  const sleeping = c.query('select sleep(30)').catch((e: unknown) => e);
  await waitFor(() => s.info().state === 'active', { what: 'the query to run' });
  expect((await call(h.gateway, 'DELETE', `/sessions/${s.id}`, { bearer: files.token })).status).toBe(200);
  const err = (await sleeping) as { errno?: number; message: string };
  expect(err.errno).toBe(1927);
  expect(err.message).toMatch(/an operator ended this session/);
});

describe.each([
  ['sub', 'your subject'],
  ['client', 'your client'],
  ['jti', 'this token'],
])('a revocation by %s', (key, who) => {
  afterEach(async () => {
    for (const r of (await call(h.gateway, 'GET', '/revocations', { bearer: files.token })).body.revocations) {
      await call(h.gateway, 'DELETE', `/revocations/${r.id}`, { bearer: files.token });
    }
  });

  test('ends the live session within a second (1927), refuses the token with 1045, admits one issued afterwards', async () => {
    const token = await h.token();
    const jti = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).jti as string;
    const c = await connect(token);
    const gone = c.query('select sleep(30)').catch((e: unknown) => e);
    await waitFor(() => h.gateway.sessions.select({ jti }).some((s) => s.info().state === 'active'), { what: 'the query to run' });
    const started = Date.now();
    const r = await call(h.gateway, 'POST', '/revocations', { bearer: files.token, body: { [key]: key === 'jti' ? jti : 'svc-reporting', reason: 'rotation' } });
    expect([r.status, r.body.sessionsEnded]).toEqual([201, 1]);
    const err = (await gone) as { errno?: number; message: string };
    expect(Date.now() - started).toBeLessThan(1000);
    expect(err.errno).toBe(1927);
    expect(err.message).toMatch(/an operator revoked this access \(reason: rotation\)/);

    const refused = await mariadbCli(h, token, 'select 1');
    expect(refused.stderr).toMatch(new RegExp(`ERROR 1045 .*access for ${who} was revoked by the operator at .*\\(reason: rotation\\)`));
    const fresh = await mariadbCli(h, await h.token('svc-reporting', { issuedAtSec: Math.floor(Date.parse(r.body.createdAt) / 1000) + 1 }), 'select 42');
    expect([fresh.stdout.trim(), fresh.stderr]).toEqual(['42', '']);
  });
});
