import { Client } from 'pg';
import { parseConfig } from '../../src/config/load';
import type { Config } from '../../src/config/types';
import { RO_PASSWORD, RW_PASSWORD, startHarness, type Harness } from './harness';
import { connectMysql2, startMysqlHarness, type MysqlHarness } from './mysqlHarness';

/**
 * The core seen from outside: every live session of both protocols is in the registry with what
 * an operator needs; ending one sends the client its protocol's own error; a revocation ends live
 * sessions and refuses old tokens; a config swap reaches the next login and gives changed
 * upstreams new pools.
 */

async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 10));
  }
}

function pgClient(h: Harness, token: string, o: { user?: string; database?: string } = {}): Client {
  const c = new Client({ host: '127.0.0.1', port: h.port, user: o.user ?? 'reader', database: o.database ?? 'app', password: token });
  c.on('error', () => undefined); // the server's FATAL also arrives as an 'error' event
  return c;
}

describe('PostgreSQL sessions in the registry', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  test('a live session shows its identity, grant, state and counters; an operator kill ends it with 57P01 and cancels its query', async () => {
    const c = pgClient(h, await h.token());
    await c.connect();
    await c.query('select 1');
    const [s] = h.gateway.sessions.select({ protocol: 'postgres', sub: 'svc-reporting' });
    expect(s.info()).toMatchObject({
      protocol: 'postgres', sub: 'svc-reporting', cid: 'svc-reporting', grant: 'reporting-agents', role: 'reader',
      database: 'app', upstream: 'app-pg', state: 'idle', queries: 1,
    });
    expect(s.info().bytesFromClient).toBeGreaterThan(0);
    expect(s.info().bytesToClient).toBeGreaterThan(0);
    expect(s.info().tokenExpiresAt).toBeGreaterThan(Date.now());
    expect(typeof s.info().jti).toBe('string');

    const sleeping = c.query('select pg_sleep(30)').catch((e: unknown) => e);
    await waitFor('the query to be running', () => s.info().state === 'active');
    expect(s.info().queryStartedAt).toBeLessThanOrEqual(Date.now());

    expect(h.gateway.sessions.end(s.id, 'killed', 'an operator ended this session')).toBe(true);
    const err = (await sleeping) as { code?: string; message: string };
    expect(err.code).toBe('57P01');
    expect(err.message).toBe('an operator ended this session');
    const end = await h.audit.waitFor((r) => r.event === 'session_end' && r.sessionId === s.id);
    expect(end.reason).toBe('killed');
    expect(h.gateway.sessions.get(s.id)).toBeUndefined();
    // Polled with a deadline: the CancelRequest reaches the server on its own connection.
    const deadline = Date.now() + 5000;
    let running = '1';
    while (running !== '0' && Date.now() < deadline) {
      running = await h.cluster.psql(`select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'`);
    }
    expect(running).toBe('0');
    await c.end().catch(() => undefined);
  });

  test('a revocation ends the live sessions it names and refuses their tokens; a token issued afterwards is admitted', async () => {
    const token = await h.token();
    const c = pgClient(h, token);
    await c.connect();
    const gone = new Promise<{ code?: string; message: string }>((resolve) => c.once('error', resolve));
    const now = Date.now();
    const r = h.gateway.state.revocations.add({ target: { client: 'svc-reporting' }, reason: 'key leaked' }, now, 3_600_000);
    const err = await gone;
    expect(err.code).toBe('57P01');
    expect(err.message).toMatch(/revoked/);
    expect(Date.now() - now).toBeLessThan(1000);

    const refused = pgClient(h, token);
    const why = (await refused.connect().catch((e: unknown) => e)) as { code?: string; message: string };
    expect(why.code).toBe('28P01');
    expect(why.message).toMatch(/access for your client was revoked by the operator at .*\(reason: key leaked\); a token issued after that time will work/);
    expect(h.audit.ofEvent('connection_rejected').some((e) => e.reason === 'revoked')).toBe(true);

    const fresh = pgClient(h, await h.token('svc-reporting', { issuedAtSec: Math.floor(now / 1000) + 1 }));
    await fresh.connect();
    expect((await fresh.query('select 1 as x')).rows).toEqual([{ x: 1 }]);
    await fresh.end();
    h.gateway.state.revocations.remove(r.id);
  });

  test('a config swap reaches the next login, and a changed upstream gets a new pool while the old one is retired', async () => {
    const before = Object.keys(h.gateway.pools.stats());
    const original = h.gateway.config.current();
    const withoutAnalytics: Config = { ...original, grants: original.grants.map((g) => ({ ...g, databases: g.databases.filter((d) => d !== 'analytics') })) };
    const change = h.gateway.config.swap(withoutAnalytics);
    expect(change).toMatchObject({ grants: true, upstreams: { changed: [] } });
    const denied = pgClient(h, await h.token(), { database: 'analytics' });
    const err = (await denied.connect().catch((e: unknown) => e)) as { code?: string; message: string };
    expect(err.code).toBe('28000');
    expect(err.message).toMatch(/database "analytics" is not granted to you/);

    const yaml = `
listen: { postgres: 127.0.0.1:0 }
oidc: { issuer: ${original.oidc.issuer}, audience: api://tokengate, devIssuer: true, requiredScopes: [db.connect], maxTokenLifetime: 1h }
upstreams:
  app-pg:
    protocol: postgres
    host: 127.0.0.1
    port: ${original.upstreams['app-pg'].port}
    tls: disable
    pool: { maxConnections: 3 }
    databases: { app: app, analytics: analytics }
    roles:
      reader: { user: agent_ro, password: \${APP_RO_PASSWORD} }
      writer: { user: agent_rw, password: \${APP_RW_PASSWORD} }
grants:
  - { name: reporting-agents, match: { groups: [db-readers] }, upstream: app-pg, databases: [app], roles: [reader] }
`;
    const resized = parseConfig(yaml, '<test>', { APP_RO_PASSWORD: RO_PASSWORD, APP_RW_PASSWORD: RW_PASSWORD });
    expect(h.gateway.config.swap(resized).upstreams.changed).toEqual(['app-pg']);
    expect(Object.keys(h.gateway.pools.stats()).filter((n) => before.includes(n))).toEqual([]);
    const c = pgClient(h, await h.token());
    await c.connect();
    expect((await c.query('select current_user as u')).rows).toEqual([{ u: 'agent_ro' }]);
    expect(h.gateway.pools.stats()['app-pg/reader/app']).toMatchObject({ active: 1 });
    await c.end();
    h.gateway.config.swap(original);
  });
});

describe('MySQL sessions in the registry', () => {
  let h: MysqlHarness;
  beforeAll(async () => {
    h = await startMysqlHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  test('a live session shows its identity and grant; an operator kill ends it with error 1927', async () => {
    const c = await connectMysql2(h, await h.token());
    await c.query('SELECT 1');
    const [s] = h.gateway.sessions.select({ protocol: 'mysql' });
    expect(s.info()).toMatchObject({ protocol: 'mysql', sub: 'svc-reporting', grant: 'reporting-agents', role: 'reader', database: 'app', state: 'idle', queries: 1 });
    const sleeping = c.query('SELECT SLEEP(30)').catch((e: unknown) => e);
    await waitFor('the query to be running', () => s.info().state === 'active');
    h.gateway.sessions.end(s.id, 'killed', 'an operator ended this session');
    const err = (await sleeping) as { errno?: number; message: string };
    expect(err.errno).toBe(1927);
    expect(err.message).toBe('an operator ended this session');
    const end = await h.audit.waitFor((r) => r.event === 'session_end' && r.sessionId === s.id);
    expect(end.reason).toBe('killed');
    c.destroy();
  });

  test('a revoked token is refused with 1045 and the reason', async () => {
    const token = await h.token();
    const r = h.gateway.state.revocations.add({ target: { sub: 'svc-reporting' } }, Date.now());
    const err = (await connectMysql2(h, token).catch((e: unknown) => e)) as { errno?: number; message: string };
    expect(err.errno).toBe(1045);
    expect(err.message).toMatch(/access for your subject was revoked by the operator/);
    h.gateway.state.revocations.remove(r.id);
  });
});
