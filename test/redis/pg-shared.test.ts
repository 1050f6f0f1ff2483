import net from 'node:net';
import { Client } from 'pg';
import { waitFor } from '../helpers/waitFor';
import { adminFiles, call, captureLog } from '../admin/adminClient';
import { startGatewayHarness, type PgHarness, type RunningGateway } from '../integration/harness';
import { freePort, killChild, spawnRedis, startRedis, type RedisServer } from '../helpers/redisServer';

/**
 * Three PostgreSQL gateways sharing one throwaway Redis (and a real PostgreSQL, the dev issuer
 * and node-postgres): a revocation made on one ends sessions on another within a second,
 * sessions are listed and killed from any instance, a CancelRequest sent to the wrong instance
 * still cancels, caps hold across instances, and a crashed instance's counts expire.
 */

const files = adminFiles();
const logs = captureLog();
let redis: RedisServer;
let h: PgHarness;
let b: RunningGateway;
let c: RunningGateway;

const redisYaml = (url: string, extra = ''): string => `redis:
  url: ${url}
  keyPrefix: "tg-redis-pg:"
  leaseTtl: 1500ms
  commandTimeout: 1s
  connectTimeout: 2s
${extra}`;

const clients: Client[] = [];
function pgClient(g: RunningGateway, token: string): Client {
  const cl = new Client({ host: '127.0.0.1', port: g.port, user: 'reader', database: 'app', password: token });
  cl.on('error', () => undefined);
  clients.push(cl);
  return cl;
}
async function connected(g: RunningGateway, token: string): Promise<Client> {
  const cl = pgClient(g, token);
  await cl.connect();
  return cl;
}
const refusal = async (g: RunningGateway, token: string): Promise<{ code?: string; message: string }> =>
  (await pgClient(g, token).connect().then(() => ({ message: 'connected' }), (e: unknown) => e)) as { code?: string; message: string };
/** Resolves with the error that ends the client's connection. */
const ended = (cl: Client): Promise<{ code?: string; message: string }> => new Promise((resolve) => cl.once('error', resolve as never));

/** A subject of its own per test, so caps and revocations do not reach other tests. */
let n = 0;
const tokenFor = (sub: string, o: { issuedAtSec?: number } = {}): Promise<string> =>
  h.token('svc-reporting', { claims: { sub }, ...o });
const subject = (): string => `tg-redis-pg-${process.pid}-${++n}`;
/** A token issued before any revocation the test makes (iat is whole seconds: one minted "now" may already be newer). */
const oldToken = (sub: string): Promise<string> => tokenFor(sub, { issuedAtSec: Math.floor(Date.now() / 1000) - 5 });

beforeAll(async () => {
  redis = await startRedis();
  const yaml = `${files.yaml}${redisYaml(redis.url)}limits:\n  maxConnectionsPerIdentity: 2\n`;
  h = await startGatewayHarness({ protocol: 'postgres', admin: true, extraYaml: yaml, core: { instanceId: 'a001' } });
  b = await h.startGateway({ admin: true, extraYaml: yaml, core: { instanceId: 'b002' } });
  c = await h.startGateway({ admin: true, extraYaml: yaml, core: { instanceId: 'c003' } });
}, 60_000);
afterAll(async () => {
  await Promise.all(clients.map((cl) => cl.end().catch(() => undefined)));
  await h?.stop();
  await redis?.stop();
  logs.stop();
  files.cleanup();
});

const admin = (g: RunningGateway, method: string, path: string, body?: unknown) => call(g.gateway, method, path, { bearer: files.token, body });

test('GET /readyz reports Redis on every instance', async () => {
  for (const g of [h, b, c]) {
    const r = await call(g.gateway, 'GET', '/readyz');
    expect(r.status).toBe(200);
    expect(r.body.checks.redis).toEqual({ ok: true, detail: expect.stringContaining(`as instance ${g.gateway.instance.id}`) });
  }
});

test('GET /sessions on any instance lists every instance\'s sessions, each with its instance; DELETE ends one held elsewhere', async () => {
  const sub = subject();
  const onB = await connected(b, await tokenFor(sub));
  const onC = await connected(c, await tokenFor(sub));
  const listed = await admin(h, 'GET', `/sessions?sub=${sub}`);
  expect(listed.status).toBe(200);
  expect(listed.body.unanswered).toBeUndefined();
  expect(listed.body.sessions.map((s: { instance: string }) => s.instance).sort()).toEqual(['b002', 'c003']);
  const idOnC = listed.body.sessions.find((s: { instance: string }) => s.instance === 'c003').id;
  expect((await admin(b, 'GET', `/sessions/${idOnC}`)).body).toMatchObject({ id: idOnC, instance: 'c003', sub, database: 'app', role: 'reader' });

  const end = ended(onC);
  const killed = await admin(h, 'DELETE', `/sessions/${idOnC}`);
  expect(killed.status).toBe(200);
  const err = await end;
  expect(err.code).toBe('57P01');
  expect(err.message).toContain('an operator ended this session');
  expect(c.audit.records.find((r) => r.event === 'session_end' && r.sessionId === idOnC)).toMatchObject({ reason: 'killed', endedBy: 'admin' });
  expect((await admin(h, 'DELETE', `/sessions/${idOnC}`)).status).toBe(404);
  expect((await onB.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  await onB.end();
});

test('a revocation made on one instance ends the matching sessions on the others within a second and blocks them everywhere', async () => {
  const sub = subject();
  const onB = await connected(b, await tokenFor(sub));
  const onC = await connected(c, await tokenFor(sub));
  const endB = ended(onB);
  const endC = ended(onC);
  const started = Date.now();
  const made = await admin(h, 'POST', '/revocations', { sub, reason: 'tg-redis test' });
  expect(made.status).toBe(201);
  const [eb, ec] = await Promise.all([endB, endC]);
  expect(Date.now() - started).toBeLessThan(1000);
  expect([eb.code, ec.code]).toEqual(['57P01', '57P01']);
  expect(eb.message).toContain('an operator revoked this access (reason: tg-redis test)');

  for (const g of [h, b, c]) {
    const refused = await refusal(g, await oldToken(sub));
    expect(refused.code).toBe('28P01');
    expect(refused.message).toContain('was revoked by the operator');
  }
  // Listed, and removable, from any instance: a token issued afterwards then works everywhere.
  expect((await admin(c, 'GET', '/revocations')).body.revocations.map((r: { id: string }) => r.id)).toContain(made.body.id);
  expect((await admin(b, 'DELETE', `/revocations/${made.body.id}`)).status).toBe(200);
  await waitFor(() => !c.gateway.state.revocations.list(Date.now()).some((r) => r.id === made.body.id), { what: 'the removal reaching instance c003' });
  const later = await connected(c, await tokenFor(sub, { issuedAtSec: Math.floor(Date.now() / 1000) + 1 }));
  await later.end();
});

test('a revocation announced while an instance was not subscribed is found by the re-read', async () => {
  const sub = subject();
  const onC = await connected(c, await tokenFor(sub));
  const endC = ended(onC);
  // Written straight to Redis by "another" instance whose announcement is lost: only the heartbeat's re-read can find it.
  const now = Date.now();
  const r = { id: 'rv-tgredismissed', target: { sub }, createdAt: now, expiresAt: now + 3600_000 };
  const raw = net.connect(redis.port, '127.0.0.1');
  const cmd = (...args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
  raw.write(cmd('SET', 'tg-redis-pg:{state}:revocation:rv-tgredismissed', JSON.stringify(r), 'PX', '3600000') + cmd('ZADD', 'tg-redis-pg:{state}:revocations', String(r.expiresAt), r.id));
  const err = await endC;
  raw.destroy();
  expect(err.code).toBe('57P01');
  const before = { issuedAtSec: Math.floor(now / 1000) - 1 };
  await waitFor(async () => (await refusal(b, await tokenFor(sub, before))).code === '28P01', { what: 'b002 refusing the subject after its re-read' });
  expect((await admin(h, 'DELETE', `/revocations/${r.id}`)).status).toBe(200);
});

test('a CancelRequest sent to another instance cancels the statement on the instance that holds the session', async () => {
  const cl = await connected(b, await tokenFor(subject()));
  const { processID, secretKey } = cl as unknown as { processID: number; secretKey: number };
  expect(processID >>> 15).toBe(0xb002); // the pid names the instance
  const running = cl.query('SELECT pg_sleep(30)').then(() => undefined, (e: { code?: string }) => e);
  await waitFor(() => b.gateway.sessions.select().some((s) => s.info().queryStartedAt !== undefined), { what: 'the statement running on b002' });
  const started = Date.now();
  // A raw CancelRequest (length 16, code 80877102, pid, key) to instance a001's listener.
  const req = Buffer.alloc(16);
  req.writeInt32BE(16, 0);
  req.writeInt32BE(80877102, 4);
  req.writeInt32BE(processID, 8);
  req.writeInt32BE(secretKey, 12);
  const sock = net.connect(h.port, '127.0.0.1', () => sock.end(req));
  sock.on('error', () => undefined);
  const err = await running;
  expect(err).toMatchObject({ code: '57014' });
  expect(Date.now() - started).toBeLessThan(5000);
  expect((await cl.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
  await cl.end();
});

test('limits.maxConnectionsPerIdentity holds across instances', async () => {
  const sub = subject();
  const one = await connected(h, await tokenFor(sub));
  const two = await connected(b, await tokenFor(sub));
  const third = await refusal(c, await tokenFor(sub));
  expect(third.code).toBe('53300');
  expect(third.message).toContain('limits.maxConnectionsPerIdentity is 2');
  await one.end();
  await waitFor(async () => {
    const r = await refusal(c, await tokenFor(sub));
    return r.message === 'connected';
  }, { what: 'a place freed on a001 being usable on c003' });
  await two.end();
});

test("a crashed instance's connection counts expire by themselves after leaseTtl", async () => {
  const yaml = `${files.yaml}${redisYaml(redis.url)}limits:\n  maxConnectionsPerIdentity: 2\n`;
  const d = await h.startGateway({ admin: true, extraYaml: yaml, core: { instanceId: 'd004' } });
  const sub = subject();
  const x = await connected(d, await tokenFor(sub));
  const y = await connected(d, await tokenFor(sub));
  expect((await refusal(h, await tokenFor(sub))).code).toBe('53300');
  d.gateway.redis!.abort(); // no release, no more renewals: what Redis sees of a crash
  expect((await admin(h, 'GET', `/sessions?sub=${sub}`)).body).toEqual({ sessions: [], unanswered: ['d004'] });
  const crashed = Date.now();
  const back = await waitFor(async () => {
    const r = await refusal(h, await tokenFor(sub));
    return r.message === 'connected' ? Date.now() : undefined;
  }, { what: 'the crashed instance\'s leases expiring', timeoutMs: 10_000, intervalMs: 200 });
  expect(back - crashed).toBeGreaterThan(500);
  // Until its announcement expires, a listing waits for it in vain and names it; then it is no longer expected.
  await waitFor(async () => (await admin(h, 'GET', '/sessions')).body.unanswered === undefined, { what: 'd004 dropping out of the instance list', timeoutMs: 10_000 });
  await x.end();
  await y.end();
}, 20_000);

test('Redis stopped: fail-closed refuses new connections with a clear error while live sessions continue; all recovers when it returns', async () => {
  const live = await connected(b, await tokenFor(subject()));
  await redis.kill();
  await waitFor(() => !h.gateway.redis!.link.available, { what: 'a001 noticing Redis is gone' });
  const refused = await refusal(h, await tokenFor(subject()));
  expect(refused.code).toBe('08001');
  expect(refused.message).toContain('cannot reach its shared state (Redis)');
  expect(h.audit.records.some((r) => r.event === 'connection_rejected' && r.reason === 'shared_state_unavailable')).toBe(true);
  const ready = await call(h.gateway, 'GET', '/readyz');
  expect(ready.status).toBe(503);
  expect(ready.body.checks.redis).toMatchObject({ ok: false, detail: expect.stringContaining('fail-closed') });
  expect((await call(h.gateway, 'GET', '/metrics')).text).toMatch(/^tokengate_redis_up 0$/m);
  expect((await live.query('SELECT 3 AS three')).rows).toEqual([{ three: 3 }]);
  expect(logs.text()).toMatch(/instance a001 lost Redis \(redis:\/\/127\.0\.0\.1:\d+\/?\).*fail-closed: new connections are refused/);

  await redis.restart();
  await waitFor(async () => (await refusal(h, await tokenFor(subject()))).message === 'connected', { what: 'a001 serving again once Redis is back', timeoutMs: 15_000, intervalMs: 200 });
  expect((await call(h.gateway, 'GET', '/metrics')).text).toMatch(/^tokengate_redis_up 1$/m);
  await waitFor(() => b.gateway.redis!.link.available && c.gateway.redis!.link.available, { what: 'b002 and c003 reconnected', timeoutMs: 15_000 });
  // Pub/sub works again: a revocation still crosses instances.
  const sub = subject();
  const onC = await connected(c, await tokenFor(sub));
  const endC = ended(onC);
  expect((await admin(b, 'POST', '/revocations', { sub })).status).toBe(201);
  expect((await endC).code).toBe('57P01');
  await live.end();
}, 40_000);

test('Redis stopped: fail-open serves with local state, says so in /readyz, and recovers', async () => {
  const yaml = `${files.yaml}${redisYaml(redis.url, '  onUnavailable: fail-open\n')}`;
  const e = await h.startGateway({ admin: true, extraYaml: yaml, core: { instanceId: 'e005' } });
  const known = subject();
  expect((await admin(e, 'POST', '/revocations', { sub: known })).status).toBe(201);
  await redis.kill();
  await waitFor(() => !e.gateway.redis!.link.available, { what: 'e005 noticing Redis is gone' });
  const served = await connected(e, await tokenFor(subject()));
  expect((await served.query('SELECT 4 AS four')).rows).toEqual([{ four: 4 }]);
  // Revocations it knew keep applying.
  expect((await refusal(e, await oldToken(known))).code).toBe('28P01');
  const ready = await call(e.gateway, 'GET', '/readyz');
  expect(ready.body.checks.redis).toMatchObject({ ok: true, detail: expect.stringContaining('fail-open') });
  await redis.restart();
  await waitFor(() => e.gateway.redis!.link.available, { what: 'e005 reconnected', timeoutMs: 15_000 });
  // Redis came back empty (no persistence): the instance writes back the revocation it knows.
  await waitFor(async () => (await refusal(h, await oldToken(known))).code === '28P01', { what: 'the revocation written back and read by a001', timeoutMs: 15_000, intervalMs: 200 });
  await served.end();
}, 40_000);

test('a gateway started while Redis is down starts anyway, refuses new connections (fail-closed), and serves once Redis comes', async () => {
  const port = await freePort();
  const f = await h.startGateway({ admin: true, extraYaml: `${files.yaml}${redisYaml(`redis://127.0.0.1:${port}`).replace('connectTimeout: 2s', 'connectTimeout: 300ms')}`, core: { instanceId: 'f006' } });
  expect((await call(f.gateway, 'GET', '/readyz')).status).toBe(503);
  expect((await refusal(f, await tokenFor(subject()))).code).toBe('08001');
  expect(logs.text()).toMatch(/cannot reach Redis \(redis:\/\/127\.0\.0\.1:\d+\/?\) within redis\.connectTimeout.*new connections are refused \(fail-closed\)/);
  const late = await spawnRedis(port);
  try {
    await waitFor(async () => (await refusal(f, await tokenFor(subject()))).message === 'connected', { what: 'f006 serving once its Redis started', timeoutMs: 15_000, intervalMs: 200 });
  } finally {
    await f.gateway.close();
    await killChild(late);
  }
}, 30_000);

test('the secrets never reach the operational log', () => {
  for (const s of h.secrets) expect(logs.text()).not.toContain(s);
});
