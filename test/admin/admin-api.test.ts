import net from 'node:net';
import { Client } from 'pg';
import type { Config } from '../../src/config/schema';
import { waitFor } from '../helpers/waitFor';
import { startGatewayHarness, type PgHarness, type RunningGateway } from '../integration/harness';
import { adminFiles, call, captureLog } from './adminClient';

/**
 * The admin API against a real gateway, PostgreSQL upstream and the dev issuer: open endpoints,
 * the bearer (token file, an operator's token matching admin.match), sessions and kill,
 * revocations, reload, and the audit of every call.
 */

const files = adminFiles();
const logs = captureLog();
let h: PgHarness;
let operator: string;

function pgClient(g: RunningGateway, token: string): Client {
  const c = new Client({ host: '127.0.0.1', port: g.port, user: 'reader', database: 'app', password: token });
  c.on('error', () => undefined);
  return c;
}

async function connected(g: RunningGateway, token: string): Promise<Client> {
  const c = pgClient(g, token);
  await c.connect();
  return c;
}

const refusal = async (g: RunningGateway, token: string): Promise<{ code?: string; message: string }> =>
  (await pgClient(g, token).connect().then(() => ({ message: 'connected' }), (e: unknown) => e)) as { code?: string; message: string };

/** A token issued after `ms` (iat is in seconds: the next second). */
const issuedAfter = (ms: number): { issuedAtSec: number } => ({ issuedAtSec: Math.floor(ms / 1000) + 1 });

beforeAll(async () => {
  h = await startGatewayHarness({ protocol: 'postgres', admin: true, extraYaml: files.yaml });
  operator = await h.token('ops-alice', { claims: { sub: 'alice@example.com', groups: ['db-admins'], scp: ['db.connect'] } });
});
afterAll(async () => {
  await h?.stop();
  logs.stop();
  files.cleanup();
});

describe('open endpoints', () => {
  test('GET /healthz answers ok; /readyz is ready with every check', async () => {
    const health = await call(h.gateway, 'GET', '/healthz');
    expect([health.status, health.text]).toEqual([200, 'ok\n']);
    const ready = await call(h.gateway, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.ready).toBe(true);
    expect(Object.keys(ready.body.checks).sort()).toEqual(['audit', 'issuer', 'listeners', 'upstream:app-pg']);
    expect(Object.values(ready.body.checks).every((c) => (c as { ok: boolean }).ok)).toBe(true);
  });

  test('/readyz is 503 naming the upstream that cannot be reached; extra checks can be added', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const running = h.gateway.config.current();
    const up = running.upstreams['app-pg'];
    h.gateway.config.swap({ ...running, upstreams: { ...running.upstreams, 'app-pg': { ...up, port } } } as Config);
    try {
      const r = await call(h.gateway, 'GET', '/readyz');
      expect(r.status).toBe(503);
      expect(r.body.ready).toBe(false);
      expect(r.body.checks['upstream:app-pg']).toEqual({ ok: false, detail: `cannot connect to 127.0.0.1:${port}: ECONNREFUSED` });
      expect(r.body.checks.issuer.ok).toBe(true);
    } finally {
      h.gateway.config.swap(running);
    }
    h.gateway.readiness.add('custom', () => ({ ok: false, detail: 'cannot write' }));
    const r = await call(h.gateway, 'GET', '/readyz');
    expect([r.status, r.body.checks.custom]).toEqual([503, { ok: false, detail: 'cannot write' }]);
    h.gateway.readiness.remove('custom');
    expect((await call(h.gateway, 'GET', '/readyz')).status).toBe(200);
  });

  test('/readyz is 503 while the audit log cannot be written (audit.onFailure: refuse)', async () => {
    const g = await h.startGateway({ admin: true });
    g.audit.healthy = false;
    const r = await call(g.gateway, 'GET', '/readyz');
    expect(r.status).toBe(503);
    expect(r.body.checks.audit).toEqual({ ok: false, detail: 'the audit log stdout cannot be written; new sessions are refused (audit.onFailure: refuse)' });
  });

  test('/readyz is 503 while the issuer\'s keys cannot be fetched, and ready once they can', async () => {
    const other = adminFiles();
    h.issuer.setAvailable(false, '503');
    try {
      const g = await h.startGateway({ admin: true, extraYaml: other.yaml });
      const r = await call(g.gateway, 'GET', '/readyz');
      expect(r.status).toBe(503);
      expect(r.body.checks.issuer.ok).toBe(false);
      expect(r.body.checks.issuer.detail).toMatch(/^the issuer's signing keys are not loaded: /);
      h.issuer.setAvailable(true);
      await waitFor(async () => (await call(g.gateway, 'GET', '/readyz')).status === 200, { what: '/readyz to turn ready', intervalMs: 200 });
    } finally {
      h.issuer.setAvailable(true);
      other.cleanup();
    }
  });

  test('GET /metrics serves the Prometheus text, open unless admin.metricsRequireAuth', async () => {
    const other = adminFiles();
    try {
      const g = await h.startGateway({ admin: true, extraYaml: other.yaml });
      const open = await call(g.gateway, 'GET', '/metrics');
      expect([open.status, open.headers.get('content-type')]).toEqual([200, g.gateway.metrics!.contentType]);
      expect(open.text).toContain('# TYPE tokengate_sessions_active gauge');
      const locked = await h.startGateway({ admin: true, extraYaml: other.yaml.replace('admin:\n', 'admin:\n  metricsRequireAuth: true\n') });
      expect((await call(locked.gateway, 'GET', '/metrics')).status).toBe(401);
      expect((await call(locked.gateway, 'GET', '/metrics', { bearer: other.token })).text).toContain('tokengate_connections_accepted_total');
    } finally {
      other.cleanup();
    }
  });
});

describe('the bearer', () => {
  test('no bearer or a wrong one: 401 with WWW-Authenticate and no hint; audited without a caller', async () => {
    for (const bearer of [undefined, 'wrong-token', files.token + 'x', operator.slice(0, -4) + 'AAAA']) {
      const r = await call(h.gateway, 'GET', '/sessions', { bearer });
      expect([r.status, r.body]).toEqual([401, { error: 'unauthorized' }]);
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="tokengate"');
    }
    const basic = await call(h.gateway, 'GET', '/sessions', { headers: { Authorization: `Basic ${Buffer.from(`x:${files.token}`).toString('base64')}` } });
    expect(basic.status).toBe(401);
    const audited = await h.audit.waitFor((r) => r.event === 'admin_request' && r.status === 401);
    expect(audited).toMatchObject({ method: 'GET', path: '/sessions' });
    expect(audited.caller).toBeUndefined();
    expect(audited.error).toBeUndefined();
  });

  test('the token file\'s bearer is caller "admin"; an operator token matching admin.match is its sub; one not matching is 403', async () => {
    expect((await call(h.gateway, 'GET', '/sessions', { bearer: files.token })).status).toBe(200);
    expect(h.audit.ofEvent('admin_request').at(-1)).toMatchObject({ method: 'GET', path: '/sessions', status: 200, caller: 'admin' });
    expect((await call(h.gateway, 'GET', '/sessions?grant=reporting-agents', { bearer: operator })).status).toBe(200);
    expect(h.audit.ofEvent('admin_request').at(-1)).toMatchObject({ path: '/sessions?grant=reporting-agents', caller: 'alice@example.com', sub: 'alice@example.com', groups: ['db-admins'] });
    const agent = await h.token(); // a valid token of the issuer, but not an operator
    const r = await call(h.gateway, 'GET', '/sessions', { bearer: agent });
    expect([r.status, r.body]).toEqual([403, { error: 'forbidden: this identity does not match admin.match' }]);
    expect(h.audit.ofEvent('admin_request').at(-1)).toMatchObject({ status: 403, caller: 'svc-reporting' });
  });

  test('with neither admin.tokenFile nor admin.match the protected endpoints answer 403 saying how to configure one', async () => {
    const bare = adminFiles();
    try {
      const g = await h.startGateway({ admin: true, extraYaml: `state:\n  dir: ${bare.stateDir}\n` });
      const r = await call(g.gateway, 'GET', '/sessions', { bearer: files.token });
      expect(r.status).toBe(403);
      expect(r.body.error).toMatch(/set admin\.tokenFile .* and\/or admin\.match/);
      expect((await call(g.gateway, 'GET', '/healthz')).status).toBe(200);
    } finally {
      bare.cleanup();
    }
  });

  test('unknown paths are 404 and wrong methods 405, as JSON', async () => {
    const missing = await call(h.gateway, 'GET', '/nope', { bearer: files.token });
    expect([missing.status, missing.body]).toEqual([404, { error: 'no such endpoint: /nope' }]);
    const wrong = await call(h.gateway, 'PUT', '/revocations', { bearer: files.token });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET, POST');
    expect((await call(h.gateway, 'POST', '/healthz')).status).toBe(405);
    expect((await call(h.gateway, 'GET', '/sessions/%E0%A4%A', { bearer: files.token })).body).toEqual({ error: 'the id in the path is not valid percent-encoding' });
  });
});

describe('sessions', () => {
  test('GET /sessions lists live sessions with their fields; filters; GET /sessions/{id}', async () => {
    const c = await connected(h, await h.token());
    await c.query('select 1');
    const all = await call(h.gateway, 'GET', '/sessions', { bearer: files.token });
    const mine = all.body.sessions.find((s: { sub: string }) => s.sub === 'svc-reporting');
    expect(Object.keys(mine)).toEqual(['id', 'instance', 'protocol', 'sub', 'cid', 'jti', 'grant', 'role', 'database', 'upstream', 'remote', 'startedAt',
      'tokenExpiresAt', 'state', 'queryStartedAt', 'queries', 'bytesFromClient', 'bytesToClient']);
    expect(mine).toMatchObject({ protocol: 'postgres', cid: 'svc-reporting', grant: 'reporting-agents', role: 'reader', database: 'app', upstream: 'app-pg', state: 'idle', queryStartedAt: null, queries: 1 });
    expect(new Date(mine.startedAt).toISOString()).toBe(mine.startedAt);
    expect(Date.parse(mine.tokenExpiresAt)).toBeGreaterThan(Date.now());
    for (const q of ['?sub=svc-reporting', '?client=svc-reporting', '?grant=reporting-agents', '?protocol=postgres']) {
      expect((await call(h.gateway, 'GET', `/sessions${q}`, { bearer: files.token })).body.sessions.map((s: { id: string }) => s.id)).toContain(mine.id);
    }
    for (const q of ['?sub=nobody', '?grant=billing-writer', '?protocol=mysql']) {
      expect((await call(h.gateway, 'GET', `/sessions${q}`, { bearer: files.token })).body.sessions).toEqual([]);
    }
    expect((await call(h.gateway, 'GET', '/sessions?subject=x&access_token=abc', { bearer: files.token })).status).toBe(400);
    expect(h.audit.ofEvent('admin_request').at(-1)!.path).toBe('/sessions?subject=%28not+shown%29&access_token=%28not+shown%29');
    expect((await call(h.gateway, 'GET', '/sessions?protocol=oracle', { bearer: files.token })).status).toBe(400);
    const one = await call(h.gateway, 'GET', `/sessions/${mine.id}`, { bearer: files.token });
    expect(one.body.id).toBe(mine.id);
    expect((await call(h.gateway, 'GET', '/sessions/pg-000000000000', { bearer: files.token })).status).toBe(404);
    await c.end();
  });

  test('DELETE /sessions/{id} ends it with FATAL 57P01 saying an operator did; session_end says killed and by whom', async () => {
    const c = await connected(h, await h.token());
    const [s] = h.gateway.sessions.select({ sub: 'svc-reporting' });
    const sleeping = c.query('select pg_sleep(30)').catch((e: unknown) => e);
    await waitFor(() => s.info().state === 'active', { what: 'the query to run' });
    const r = await call(h.gateway, 'DELETE', `/sessions/${s.id}`, { bearer: operator });
    expect([r.status, r.body]).toEqual([200, { id: s.id, ended: true }]);
    const err = (await sleeping) as { code?: string; message: string };
    expect(err.code).toBe('57P01');
    expect(err.message).toMatch(/an operator ended this session/);
    const end = await h.audit.waitFor((x) => x.event === 'session_end' && x.sessionId === s.id);
    expect(end).toMatchObject({ reason: 'killed', endedBy: 'alice@example.com' });
    expect(h.audit.ofEvent('admin_request').at(-1)).toMatchObject({ method: 'DELETE', status: 200, caller: 'alice@example.com', action: `killed ${s.id}` });
    expect((await call(h.gateway, 'DELETE', `/sessions/${s.id}`, { bearer: operator })).status).toBe(404);
    await c.end().catch(() => undefined);
  });
});

describe('revocations', () => {
  afterEach(async () => {
    for (const r of (await call(h.gateway, 'GET', '/revocations', { bearer: files.token })).body.revocations) {
      await call(h.gateway, 'DELETE', `/revocations/${r.id}`, { bearer: files.token });
    }
  });

  test.each([
    ['sub', 'svc-reporting', 'your subject'],
    ['client', 'svc-reporting', 'your client'],
    ['jti', '', 'this token'],
  ])('by %s: the live session ends within a second (57P01), reconnects get 28P01, a token issued afterwards connects', async (key, value, who) => {
    const token = await h.token();
    const jti = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).jti as string;
    const c = await connected(h, token);
    const gone = new Promise<{ code?: string; message: string }>((resolve) => c.once('error', resolve));
    const started = Date.now();
    const r = await call(h.gateway, 'POST', '/revocations', { bearer: files.token, body: { [key]: value || jti, reason: 'key leaked' } });
    expect(r.status).toBe(201);
    expect(Object.keys(r.body)).toEqual(['id', 'createdAt', 'expiresAt', 'sessionsEnded']);
    expect(r.body.sessionsEnded).toBe(1);
    // oidc.maxTokenLifetime is 1h: no token it blocks is valid after that.
    expect(Date.parse(r.body.expiresAt) - Date.parse(r.body.createdAt)).toBe(3_600_000);
    const err = await gone;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(err.code).toBe('57P01');
    const end = await h.audit.waitFor((x) => x.event === 'session_end' && x.reason === 'revoked' && x.jti === jti);
    expect(end.endedBy).toBe('admin');

    const refused = await refusal(h, token);
    expect(refused.code).toBe('28P01');
    expect(refused.message).toContain(`access for ${who} was revoked by the operator at`);
    expect(refused.message).toContain('(reason: key leaked)');
    if (key !== 'jti') {
      const fresh = await connected(h, await h.token('svc-reporting', issuedAfter(Date.parse(r.body.createdAt))));
      expect((await fresh.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
      await fresh.end();
    } else {
      const other = await connected(h, await h.token()); // another token of the same agent
      await other.end();
    }
    expect(h.audit.ofEvent('admin_request').at(-1)).toMatchObject({ method: 'POST', status: 201, caller: 'admin' });
    expect(String(h.audit.ofEvent('admin_request').at(-1)!.action)).toMatch(new RegExp(`^revoked ${key}=.* as ${r.body.id}; 1 session\\(s\\) ended$`));
  });

  test('until locks every matching token until then, even one issued afterwards; GET lists it; DELETE lifts it', async () => {
    const until = new Date(Date.now() + 600_000).toISOString();
    const r = await call(h.gateway, 'POST', '/revocations', { bearer: operator, body: { sub: 'svc-reporting', until } });
    expect(r.status).toBe(201);
    const later = await h.token('svc-reporting', issuedAfter(Date.now() + 1000));
    const refused = await refusal(h, later);
    expect(refused.code).toBe('28P01');
    expect(refused.message).toContain(`access is locked until ${until.replace(/\.\d{3}Z$/, 'Z')}`);
    const list = await call(h.gateway, 'GET', '/revocations', { bearer: files.token });
    expect(list.body.revocations).toEqual([{ id: r.body.id, sub: 'svc-reporting', reason: null, by: 'alice@example.com', createdAt: r.body.createdAt, until, expiresAt: r.body.expiresAt }]);
    expect(Date.parse(r.body.expiresAt)).toBeGreaterThan(Date.parse(until)); // createdAt + 1h is later than until
    expect((await call(h.gateway, 'DELETE', `/revocations/${r.body.id}`, { bearer: operator })).body).toEqual({ id: r.body.id, removed: true });
    expect(h.audit.ofEvent('admin_request').at(-1)).toMatchObject({ method: 'DELETE', caller: 'alice@example.com', action: `removed revocation ${r.body.id} (sub=svc-reporting)` });
    await (await connected(h, later)).end();
    expect((await call(h.gateway, 'DELETE', `/revocations/${r.body.id}`, { bearer: operator })).status).toBe(404);
  });

  test.each([
    ['no target', {}, /exactly one of "sub", "client" or "jti"/],
    ['two targets', { sub: 'a', client: 'b' }, /not sub and client/],
    ['an empty sub', { sub: '' }, /non-empty string/],
    ['a number', { sub: 5 }, /non-empty string/],
    ['a reason of 501 characters', { sub: 'a', reason: 'x'.repeat(501) }, /at most 500 characters/],
    ['until: tomorrow', { sub: 'a', until: 'tomorrow' }, /ISO 8601 time with a zone/],
    ['until without a zone', { sub: 'a', until: '2026-01-01T00:00:00' }, /ISO 8601 time with a zone/],
    ['until in the past', { sub: 'a', until: '2000-01-01T00:00:00Z' }, /is not in the future/],
    ['an unknown field', { sub: 'a', extra: 1 }, /unknown field "extra"/],
    ['an array', [], /expected a JSON object/],
  ])('POST /revocations with %s is 400', async (_what, body, message) => {
    const r = await call(h.gateway, 'POST', '/revocations', { bearer: files.token, body });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(message);
  });

  test('a body that is not JSON is 400, one over 64 KiB is 413; nothing is revoked', async () => {
    expect((await call(h.gateway, 'POST', '/revocations', { bearer: files.token, rawBody: '{"sub":' })).body).toEqual({ error: 'the body is not valid JSON' });
    const big = await call(h.gateway, 'POST', '/revocations', { bearer: files.token, rawBody: JSON.stringify({ sub: 'a', reason: 'x'.repeat(70_000) }) });
    expect(big.status).toBe(413);
    expect((await call(h.gateway, 'GET', '/revocations', { bearer: files.token })).body.revocations).toEqual([]);
  });
});

describe('reload and logs', () => {
  test('POST /reload answers 200 with what changed, 400 with the problems (the running config kept)', async () => {
    let next: () => Config = () => h.gateway.config.current();
    const g = await h.startGateway({ admin: true, extraYaml: files.yaml, core: { loadConfig: () => next() } });
    const same = await call(g.gateway, 'POST', '/reload', { bearer: files.token });
    expect([same.status, same.body]).toEqual([200, { ok: true, changed: [] }]);
    const running = g.gateway.config.current();
    next = () => ({ ...running, session: { ...running.session, authTimeoutMs: 7000 } });
    const changed = await call(g.gateway, 'POST', '/reload', { bearer: operator });
    expect([changed.status, changed.body]).toEqual([200, { ok: true, changed: ['session'] }]);
    expect(g.audit.ofEvent('admin_request').at(-1)).toMatchObject({ path: '/reload', status: 200, caller: 'alice@example.com', action: 'reloaded: changed session' });
    const { ConfigError } = await import('../../src/config/problems');
    next = () => {
      throw new ConfigError('<test>', [{ path: 'grants[0].upstream', message: 'no upstream "x"' }]);
    };
    const broken = await call(g.gateway, 'POST', '/reload', { bearer: files.token });
    expect(broken.status).toBe(400);
    expect(broken.body.problems).toEqual([{ path: 'grants[0].upstream', message: 'no upstream "x"' }]);
    expect(g.gateway.config.current().session.authTimeoutMs).toBe(7000);
  });

  test('POST /reopen-logs reopens the audit log', async () => {
    const g = await h.startGateway({ admin: true, extraYaml: files.yaml });
    const reopen = jest.spyOn(g.gateway.audit, 'reopen');
    const r = await call(g.gateway, 'POST', '/reopen-logs', { bearer: files.token });
    expect([r.status, r.body, reopen.mock.calls.length]).toEqual([200, { reopened: true }, 1]);
    expect(g.audit.ofEvent('admin_request').at(-1)).toMatchObject({ path: '/reopen-logs', action: 'reopened logs' });
  });

  test('no bearer ever reaches the audit or the operational log', () => {
    const everything = h.audit.lines.join('\n') + logs.text();
    expect(h.audit.ofEvent('admin_request').length).toBeGreaterThan(10);
    for (const secret of [files.token, operator, operator.split('.')[2], ...h.secrets]) expect(everything).not.toContain(secret);
  });
});
