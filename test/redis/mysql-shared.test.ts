import type mysql from 'mysql2/promise';
import { waitFor } from '../helpers/waitFor';
import { adminFiles, call, captureLog } from '../admin/adminClient';
import { connectMysql2 } from '../integration/clients';
import { startGatewayHarness, type MysqlHarness, type RunningGateway } from '../integration/harness';
import { startRedis, type RedisServer } from '../helpers/redisServer';

/**
 * Two MySQL gateways sharing one throwaway Redis, a real MariaDB and mysql2: a `KILL QUERY id`
 * sent through one instance interrupts the statement of a session held by the other (the id
 * names its instance), the session list and a revocation cross instances, and
 * limits.maxClientConnections counts every instance's clients.
 */

const files = adminFiles();
const logs = captureLog();
let redis: RedisServer;
let h: MysqlHarness;
let b: RunningGateway;
const open: mysql.Connection[] = [];

type MyError = { errno?: number; code?: unknown; sqlState?: string; message: string };

let n = 0;
const subject = (): string => `tg-redis-my-${process.pid}-${++n}`;
const tokenFor = (sub: string): Promise<string> => h.token('svc-reporting', { claims: { sub } });
async function connected(g: RunningGateway, token: string): Promise<mysql.Connection> {
  const c = await connectMysql2(g, token);
  c.on('error', () => undefined);
  open.push(c);
  return c;
}
const nextError = (c: mysql.Connection): Promise<MyError> => new Promise((resolve) => c.once('error', (e) => resolve(e as MyError)));
const admin = (g: RunningGateway, method: string, path: string, body?: unknown) => call(g.gateway, method, path, { bearer: files.token, body });

beforeAll(async () => {
  redis = await startRedis();
  const yaml = `${files.yaml}redis:\n  url: ${redis.url}\n  keyPrefix: "tg-redis-my:"\n  leaseTtl: 3s\nlimits:\n  maxClientConnections: 3\n`;
  h = await startGatewayHarness({ protocol: 'mysql', admin: true, extraYaml: yaml, core: { instanceId: '0a0a' } });
  b = await h.startGateway({ admin: true, extraYaml: yaml, core: { instanceId: '0b0b' } });
}, 60_000);
afterAll(async () => {
  for (const c of open) c.destroy();
  await h?.stop();
  await redis?.stop();
  logs.stop();
  files.cleanup();
});
afterEach(async () => {
  for (const c of open.splice(0)) c.destroy();
  await waitFor(() => h.gateway.sessions.size === 0 && b.gateway.sessions.size === 0, { what: 'the test\'s sessions to end' });
});

test('KILL QUERY with a connection id of another instance interrupts the statement there', async () => {
  const sub = subject();
  const victim = await connected(b, await tokenFor(sub));
  expect((victim.threadId! - 0x40000000) >>> 14).toBe(0x0b0b); // the id names instance 0b0b
  const running = victim.query('SELECT SLEEP(30) AS slept').then(([rows]) => rows, (e: MyError) => e);
  await waitFor(() => b.gateway.sessions.select({ sub }).some((s) => s.info().queryStartedAt !== undefined), { what: 'SLEEP running on 0b0b' });
  const killer = await connected(h, await tokenFor(sub));
  const started = Date.now();
  await killer.query(`KILL QUERY ${victim.threadId}`);
  const outcome = await running;
  expect(Date.now() - started).toBeLessThan(5000);
  // MariaDB ends an interrupted SLEEP() early with the result 1, or with 1317 when the kill lands before the sleep starts.
  const early = Array.isArray(outcome) ? outcome : (outcome as MyError).errno;
  expect([[{ slept: 1 }], 1317]).toContainEqual(early);
  expect((await victim.query('SELECT 1 AS one'))[0]).toEqual([{ one: 1 }]);

  // Another identity's id is unknown, wherever it lives.
  const stranger = await connected(h, await tokenFor(subject()));
  await expect(stranger.query(`KILL QUERY ${victim.threadId}`)).rejects.toMatchObject({ errno: 1094 });
  // KILL CONNECTION through the other instance ends the session there.
  const end = nextError(victim);
  await killer.query(`KILL CONNECTION ${victim.threadId}`);
  expect(await end).toMatchObject({ code: expect.anything() });
});

test('sessions of both instances are listed and killed from either; a revocation ends them within a second', async () => {
  const sub = subject();
  const onB = await connected(b, await tokenFor(sub));
  const listed = await admin(h, 'GET', `/sessions?sub=${sub}`);
  expect(listed.body.sessions).toEqual([expect.objectContaining({ instance: '0b0b', protocol: 'mysql', sub })]);
  const end = nextError(onB);
  const started = Date.now();
  expect((await admin(h, 'POST', '/revocations', { sub })).status).toBe(201);
  const err = await end;
  expect(Date.now() - started).toBeLessThan(1000);
  expect(err.errno ?? err.code).toBe(1927);
  const old = await h.token('svc-reporting', { claims: { sub }, issuedAtSec: Math.floor(Date.now() / 1000) - 5 });
  await expect(connectMysql2(b, old)).rejects.toMatchObject({ errno: 1045 });
});

test('limits.maxClientConnections counts the clients of every instance', async () => {
  await connected(h, await tokenFor(subject()));
  await connected(b, await tokenFor(subject()));
  await connected(b, await tokenFor(subject()));
  const refused = await connectMysql2(h, await tokenFor(subject())).then(() => undefined, (e: MyError) => e);
  expect(refused).toMatchObject({ errno: 1040 });
  expect(refused!.message).toContain('limits.maxClientConnections');
});

test('Redis stopped (fail-closed): new MySQL clients get 1105 in place of the greeting, live ones continue; back when Redis is', async () => {
  const live = await connected(b, await tokenFor(subject()));
  await redis.kill();
  await waitFor(() => !h.gateway.redis!.link.available, { what: '0a0a noticing Redis is gone' });
  const refused = await connectMysql2(h, await tokenFor(subject())).then(() => undefined, (e: MyError) => e);
  expect(refused).toMatchObject({ errno: 1105 });
  expect(refused!.message).toContain('cannot reach its shared state (Redis)');
  expect(h.audit.records.some((r) => r.event === 'connection_rejected' && r.reason === 'shared_state_unavailable')).toBe(true);
  expect((await live.query('SELECT 5 AS five'))[0]).toEqual([{ five: 5 }]);
  await redis.restart();
  await waitFor(async () => {
    const c = await connectMysql2(h, await tokenFor(subject())).catch(() => undefined);
    c?.destroy();
    return c !== undefined;
  }, { what: '0a0a serving again', timeoutMs: 15_000, intervalMs: 200 });
}, 30_000);
