import { Client } from 'pg';
import type { Connection } from 'mysql2/promise';
import type { Config } from '../../src/config/schema';
import { waitFor } from '../helpers/waitFor';
import { connectMysql2 } from '../integration/clients';
import { startGatewayHarness, type MysqlHarness, type PgHarness } from '../integration/harness';

/**
 * Continuous access evaluation: a config swap (what a reload applies) re-decides every live
 * session with the identity it was admitted with. Sessions the new grants no longer admit end
 * within a second with their protocol's error; the others keep running; a grant added lets new
 * sessions in at once.
 */

type AuditRecord = Record<string, unknown>;

function withoutGrant(config: Config, name: string): Config {
  return { ...config, grants: config.grants.filter((g) => g.name !== name) };
}

function withGrantFor(config: Config, group: string): Config {
  const base = config.grants.find((g) => g.name === 'reporting-agents')!;
  return { ...config, grants: [...config.grants, { ...base, name: `lifetest-${group}`, match: { ...base.match, groups: [group] } }] };
}

describe('PostgreSQL: a reload re-decides live sessions', () => {
  let h: PgHarness;
  beforeAll(async () => {
    h = await startGatewayHarness({ protocol: 'postgres' });
  });
  afterAll(async () => {
    await h?.stop();
  });

  const connect = async (clientId: string, user = 'reader'): Promise<Client> => {
    const c = new Client({ host: '127.0.0.1', port: h.port, user, database: 'app', password: await h.token(clientId) });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };

  test('a removed grant ends its sessions within a second with 28000; sessions of other grants continue', async () => {
    const original = h.gateway.config.current();
    const reporting = await connect('svc-reporting');
    const billing = await connect('0oa1svcbilling', 'writer');
    const inTx = await connect('svc-reporting');
    await inTx.query('begin');
    const gone = [reporting, inTx].map((c) => new Promise<{ code?: string; message: string }>((resolve) => c.once('error', resolve)));
    const started = Date.now();
    h.gateway.config.swap(withoutGrant(original, 'reporting-agents'));
    const errors = await Promise.all(gone);
    expect(Date.now() - started).toBeLessThan(1000);
    for (const err of errors) {
      expect(err.code).toBe('28000');
      expect(err.message).toMatch(/^your grant was withdrawn by a configuration change and tokengate ended this session: no grant matches your token/);
    }
    const ends = h.audit.ofEvent('session_end').filter((r: AuditRecord) => r.reason === 'grant_withdrawn');
    expect(ends.map((r: AuditRecord) => r.sub)).toEqual(['svc-reporting', 'svc-reporting']);
    expect((await billing.query('select current_user as u')).rows).toEqual([{ u: h.names.rw }]);
    expect(h.gateway.sessions.select({ sub: '0oa1svcbilling' })).toHaveLength(1);

    const refused = await connect('svc-reporting').catch((e: { code?: string }) => e);
    expect((refused as { code?: string }).code).toBe('28000');
    h.gateway.config.swap(original);
    await billing.end();
  });

  test('a role taken out of a grant ends only the sessions using that role', async () => {
    const original = h.gateway.config.current();
    const asWriter = await connect('0oa1svcbilling', 'writer');
    const asReader = await connect('0oa1svcbilling', 'reader');
    const gone = new Promise<{ code?: string; message: string }>((resolve) => asWriter.once('error', resolve));
    h.gateway.config.swap({ ...original, grants: original.grants.map((g) => (g.name === 'billing-writer' ? { ...g, roles: ['reader'] } : g)) });
    const err = await gone;
    expect(err.code).toBe('28000');
    expect(err.message).toMatch(/role "writer"/);
    expect((await asReader.query('select 1 as x')).rows).toEqual([{ x: 1 }]);
    h.gateway.config.swap(original);
    await asReader.end();
  });

  test('a session still being admitted when its grant is withdrawn ends as soon as its relay starts', async () => {
    const narrow = await h.startGateway({ pool: '{ maxConnections: 1, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 10s }' });
    const open = async (clientId: string): Promise<Client> => {
      const c = new Client({ host: '127.0.0.1', port: narrow.port, user: 'reader', database: 'app', password: await h.token(clientId) });
      c.on('error', () => undefined);
      return c;
    };
    const holder = await open('0oa1svcbilling'); // billing-writer grants reader too: the same pool, another grant
    await holder.connect();
    const waiting = await open('svc-reporting');
    const admitted = waiting.connect();
    const gone = new Promise<{ code?: string; message: string }>((resolve) => waiting.once('error', resolve));
    await waitFor(() => narrow.gateway.sessions.select({ sub: 'svc-reporting' }).length === 1, { what: 'the second login to wait for the pool' });
    const original = narrow.gateway.config.current();
    narrow.gateway.config.swap(withoutGrant(original, 'reporting-agents'));
    expect(narrow.gateway.sessions.select({ sub: 'svc-reporting' })).toHaveLength(1); // not admitted yet: the review skipped it
    await holder.end(); // the pool's only connection goes to the waiting login
    await admitted.catch(() => undefined);
    const err = await gone;
    expect(err.code).toBe('28000');
    expect(err.message).toMatch(/^your grant was withdrawn by a configuration change/);
    await waitFor(() => narrow.gateway.sessions.size === 0, { what: 'the session to end' });
  });

  test('an OIDC change gives new logins a new verifier with an empty verified-token cache; live sessions continue', async () => {
    const original = h.gateway.config.current();
    const live = await connect('svc-reporting');
    const before = h.gateway.verifier();
    expect(before.stats.cachedTokens).toBeGreaterThan(0);
    h.gateway.config.swap({ ...original, oidc: { ...original.oidc, clockSkewMs: original.oidc.clockSkewMs + 1000 } });
    const after = h.gateway.verifier();
    expect(after).not.toBe(before);
    expect(after.stats.cachedTokens).toBe(0);
    const fresh = await connect('svc-reporting');
    expect(after.stats.signatureChecks).toBe(1);
    expect((await live.query('select 1 as x')).rows).toEqual([{ x: 1 }]);
    h.gateway.config.swap(original);
    await Promise.all([live.end(), fresh.end()]);
  });

  test('a grant added by a reload admits new sessions at once', async () => {
    const original = h.gateway.config.current();
    const before = await connect('svc-nobody').catch((e: { code?: string }) => e);
    expect((before as { code?: string }).code).toBe('28000');
    h.gateway.config.swap(withGrantFor(original, 'marketing'));
    const c = await connect('svc-nobody');
    expect((await c.query('select current_user as u')).rows).toEqual([{ u: h.names.ro }]);
    h.gateway.config.swap(original); // the grant goes again: this session ends
    await new Promise((resolve) => c.once('error', resolve));
  });
});

describe('MySQL: a reload re-decides live sessions', () => {
  let h: MysqlHarness;
  beforeAll(async () => {
    h = await startGatewayHarness({ protocol: 'mysql' });
  });
  afterAll(async () => {
    await h?.stop();
  });

  test('a removed grant ends its sessions within a second with 1927; sessions of other grants continue', async () => {
    const original = h.gateway.config.current();
    const reporting = await connectMysql2(h, await h.token('svc-reporting'));
    const billing = await connectMysql2(h, await h.token('0oa1svcbilling'), { user: 'writer' });
    const idle = await connectMysql2(h, await h.token('svc-reporting'));
    const idleGone = new Promise<{ code?: unknown; message: string }>((resolve) => (idle as Connection).once('error', resolve));
    // A running statement gets the ERR as its answer; mysql2 reports it on an idle connection as a fatal error (code 1927).
    const sleeping = reporting.query('SELECT SLEEP(30)').catch((e: { errno?: number; message: string }) => e);
    await waitFor(() => h.gateway.sessions.select({ protocol: 'mysql', sub: 'svc-reporting' }).some((s) => s.info().state === 'active'), { what: 'the SLEEP to run' });
    const started = Date.now();
    h.gateway.config.swap(withoutGrant(original, 'reporting-agents'));
    const err = (await sleeping) as { errno?: number; message: string };
    const idleErr = await idleGone;
    expect(idleErr.code).toBe(1927);
    expect(idleErr.message).toMatch(/^your grant was withdrawn by a configuration change/);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(err.errno).toBe(1927);
    expect(err.message).toMatch(/^your grant was withdrawn by a configuration change/);
    const end = await h.audit.waitFor((r: AuditRecord) => r.event === 'session_end' && r.reason === 'grant_withdrawn');
    expect(end.sub).toBe('svc-reporting');
    const [rows] = await billing.query('SELECT 1 AS x');
    expect(rows).toEqual([{ x: 1 }]);
    h.gateway.config.swap(original);
    reporting.destroy();
    idle.destroy();
    await billing.end();
  });

  test('a session without a database continues while its role reaches one, and ends when none is left', async () => {
    const original = h.gateway.config.current();
    const c = await connectMysql2(h, await h.token('svc-reporting'), { database: undefined });
    const gone = new Promise<{ code?: unknown; message: string }>((resolve) => (c as Connection).once('error', resolve));
    const [s] = h.gateway.sessions.select({ protocol: 'mysql', sub: 'svc-reporting' });
    expect(s.info().database).toBe('');
    h.gateway.config.swap({ ...original, grants: original.grants.map((g) => (g.name === 'reporting-agents' ? { ...g, databases: ['analytics'] } : g)) });
    await c.ping(); // still there
    expect(h.gateway.sessions.get(s.id)).toBeDefined();
    h.gateway.config.swap(withoutGrant(original, 'reporting-agents'));
    const err = await gone;
    expect(err.code).toBe(1927);
    expect(err.message).toMatch(/no grant allows role "reader" on any MySQL database any more/);
    h.gateway.config.swap(original);
    c.destroy();
  });
});
