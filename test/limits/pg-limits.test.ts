import net from 'node:net';
import { Client } from 'pg';
import type { Config } from '../../src/config/schema';
import { Secret } from '../../src/config/secret';
import { log } from '../../src/log';
import { waitFor } from '../helpers/waitFor';
import { psql } from '../integration/clients';
import { startGatewayHarness, type PgHarness } from '../integration/harness';

/**
 * Every limit of a PostgreSQL session, through the real gateway to a real PostgreSQL with
 * node-postgres and psql: the connection caps answer 53300, the idle timeouts end the session
 * with PostgreSQL's own 57P05 / 25P03, the grant's session duration and statement timeout
 * apply (the statement timeout does not outlive the session on its pooled connection), an
 * ended session's running statement is cancelled upstream, and upstream trouble reaches the
 * operational log, a refused login told apart from an unreachable upstream.
 */

type PgError = { code?: string; message: string };

function pgClient(h: PgHarness, token: string, o: { user?: string; port?: number } = {}): Client {
  const c = new Client({ host: '127.0.0.1', port: o.port ?? h.port, user: o.user ?? 'reader', database: 'app', password: token });
  c.on('error', () => undefined); // a FATAL after the login also arrives as an 'error' event
  return c;
}

const nextError = (c: Client): Promise<PgError> => new Promise((resolve) => c.once('error', (e) => resolve(e as PgError)));

describe('PostgreSQL limits', () => {
  let h: PgHarness;
  let base: Config;
  const open: Client[] = [];
  const withConfig = (change: (c: Config) => Partial<Config>): void => {
    h.gateway.config.swap({ ...base, ...change(base) });
  };
  const grantWith = (extra: Record<string, number>) => (c: Config): Partial<Config> => ({
    grants: c.grants.map((g) => (g.name === 'reporting-agents' ? { ...g, ...extra } : g)),
  });
  const connected = async (token?: string): Promise<Client> => {
    const c = pgClient(h, token ?? (await h.token()));
    open.push(c);
    await c.connect();
    return c;
  };

  beforeAll(async () => {
    // One pooled connection: a later session gets the very connection an earlier one used.
    h = await startGatewayHarness({ protocol: 'postgres', pool: '{ maxConnections: 1, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 5s }' });
    base = h.gateway.config.current();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.end().catch(() => undefined)));
    h.gateway.config.swap(base);
    await waitFor(() => h.gateway.sessions.size === 0, { what: 'every session of the test to end' });
    jest.restoreAllMocks();
  });
  afterAll(async () => {
    await h?.stop();
  });

  test('limits.maxClientConnections counts connections from accept and refuses the next with 53300', async () => {
    withConfig(() => ({ limits: { ...base.limits, maxClientConnections: 2 } }));
    const sockets = [net.connect(h.port, '127.0.0.1'), net.connect(h.port, '127.0.0.1')];
    try {
      await Promise.all(sockets.map((s) => new Promise((r) => s.once('connect', r))));
      await waitFor(() => h.gateway.state.leases.count('clients') === 2, { what: 'two handshakes to count' });
      const refused = await psql(h, await h.token(), 'select 1');
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/FATAL: {2}tokengate has reached its limit of 2 client connections \(limits\.maxClientConnections\); retry in a moment/);
      const r = await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'client_connection_limit');
      expect(r.message).toMatch(/limits\.maxClientConnections/);
    } finally {
      for (const s of sockets) s.destroy();
    }
    await waitFor(() => h.gateway.state.leases.count('clients') === 0, { what: 'the handshakes to be given back' });
    expect((await psql(h, await h.token(), 'select 1')).stdout.trim()).toBe('1');
  });

  test('limits.maxConnectionsPerIdentity refuses a second session of the same sub with 53300; another identity still connects', async () => {
    withConfig(() => ({ limits: { ...base.limits, maxConnectionsPerIdentity: 1 } }));
    await connected();
    const second = pgClient(h, await h.token());
    const err = (await second.connect().catch((e: unknown) => e)) as PgError;
    expect(err.code).toBe('53300');
    expect(err.message).toMatch(/you already have 1 sessions open through tokengate.*limits\.maxConnectionsPerIdentity is 1\); close idle sessions and retry/);
    expect((await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'identity_connection_limit')).sub).toBe('svc-reporting');
    const billing = pgClient(h, await h.token('0oa1svcbilling'), { user: 'writer' });
    open.push(billing);
    await billing.connect();
  });

  test("a grant's maxConnections refuses the next session under it with 53300", async () => {
    withConfig(grantWith({ maxConnections: 1 }));
    await connected();
    const err = (await pgClient(h, await h.token()).connect().catch((e: unknown) => e)) as PgError;
    expect(err.code).toBe('53300');
    expect(err.message).toMatch(/grant "reporting-agents" allows at most 1 sessions at once/);
    await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'grant_connection_limit');
  });

  test('session.idleTimeout ends an idle session with FATAL 57P05; a running statement is not idle', async () => {
    withConfig(() => ({ session: { ...base.session, idleTimeoutMs: 1000 } }));
    const c = await connected();
    const started = Date.now();
    // Busy for longer than the timeout: not idle.
    await c.query('select pg_sleep(1.3)');
    const err = await nextError(c);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2300);
    expect(err.code).toBe('57P05');
    expect(err.message).toMatch(/^terminating connection due to idle-session timeout: tokengate ends sessions idle for 1s \(session\.idleTimeout\)/);
    expect((await h.audit.waitFor((e) => e.event === 'session_end' && e.reason === 'idle_timeout')).upstreamReused).toBe(true);
  });

  test('session.idleInTransactionTimeout ends a session idle inside a transaction with FATAL 25P03, and the transaction is rolled back', async () => {
    withConfig(() => ({ session: { ...base.session, idleInTransactionTimeoutMs: 1000 } }));
    const c = await connected();
    await c.query('select 1'); // idle outside a transaction: no timeout
    await c.query('begin');
    const err = await nextError(c);
    expect(err.code).toBe('25P03');
    expect(err.message).toMatch(/idle-in-transaction timeout.*\(session\.idleInTransactionTimeout\) and was rolled back/);
    await h.audit.waitFor((e) => e.event === 'session_end' && e.reason === 'idle_in_transaction_timeout');
  });

  test("a grant's maxSessionDuration ends the session at a statement boundary", async () => {
    withConfig(grantWith({ maxSessionDurationMs: 1000 }));
    const c = await connected();
    const gone = nextError(c);
    // A statement running when the time is up is interrupted, then the session ends.
    const running = c.query('select pg_sleep(10)').catch((e: unknown) => e as PgError);
    const err = await gone;
    expect(err.code).toBe('57P01');
    expect(err.message).toMatch(/longest a session under grant "reporting-agents" may last \(1s, its maxSessionDuration\)/);
    expect((await running as PgError).code).toBe('57014');
    await h.audit.waitFor((e) => e.event === 'session_end' && e.reason === 'max_session_duration');
  });

  test("a grant's statementTimeout cancels a long statement with the server's 57014 and does not stay on the pooled connection", async () => {
    withConfig(grantWith({ statementTimeoutMs: 300 }));
    const c = await connected();
    const pid = (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number;
    expect((await c.query('show statement_timeout')).rows[0].statement_timeout).toBe('300ms');
    const err = (await c.query('select pg_sleep(5)').catch((e: unknown) => e)) as PgError;
    expect(err.code).toBe('57014');
    expect(err.message).toBe('canceling statement due to statement timeout');
    // node-postgres reports the error before its ReadyForQuery: one more round trip, so the session ends at rest.
    await c.query('select 1');
    await c.end();
    open.length = 0;

    h.gateway.config.swap(base);
    await waitFor(() => h.gateway.pools.stats()['app-pg/reader/app']?.idle === 1, {
      what: 'the connection back in the pool', detail: () => `pools: ${JSON.stringify(h.gateway.pools.stats())}; last audit: ${h.audit.lines.slice(-3).join('\n')}`,
    });
    const next = await connected();
    expect((await next.query('select pg_backend_pid() as pid')).rows[0].pid).toBe(pid);
    expect((await next.query('show statement_timeout')).rows[0].statement_timeout).toBe('0');
  });

  test('a session ended by shutdown, kill or revocation cancels its running statement upstream', async () => {
    const other = await h.startGateway({});
    const sleeping = async (port: number, sql: string): Promise<{ c: Client; err: Promise<PgError> }> => {
      const c = pgClient(h, await h.token(), { port });
      open.push(c);
      await c.connect();
      const err = c.query(sql).then(() => ({ message: 'no error' }), (e: unknown) => e as PgError);
      await waitFor(async () => (await h.cluster.psql(`select count(*) from pg_stat_activity where query = '${sql}' and state = 'active'`)) === '1',
        { what: `${sql} running upstream` });
      return { c, err };
    };
    const gone = (sql: string): Promise<unknown> => waitFor(
      async () => (await h.cluster.psql(`select count(*) from pg_stat_activity where query = '${sql}'`)) === '0',
      { what: `${sql} gone from pg_stat_activity`, timeoutMs: 3000 });

    const shut = await sleeping(other.port, 'select pg_sleep(30)');
    await other.gateway.close();
    // close() resolved after the session had ended, i.e. once its statement was cancelled: a process may exit now.
    expect(other.audit.ofEvent('session_end').map((e) => e.reason)).toEqual(['shutdown']);
    expect((await shut.err).code).toBe('57P01');
    await gone('select pg_sleep(30)');

    const killed = await sleeping(h.port, 'select pg_sleep(31)');
    const [s] = h.gateway.sessions.select({ protocol: 'postgres' });
    s.end('killed', 'an operator ended this session');
    expect((await killed.err).code).toBe('57P01');
    await gone('select pg_sleep(31)');

    const revoked = await sleeping(h.port, 'select pg_sleep(32)');
    const r = h.gateway.state.revocations.add({ target: { sub: 'svc-reporting' } }, Date.now(), 60_000);
    expect((await revoked.err).code).toBe('57P01');
    await gone('select pg_sleep(32)');
    h.gateway.state.revocations.remove(r.id);
  });

  test("an upstream refusing the gateway's login is a configuration error, apart from an unreachable upstream; both reach the operational log without secrets", async () => {
    const errors = jest.spyOn(log, 'error').mockImplementation(() => log);
    const warnings = jest.spyOn(log, 'warn').mockImplementation(() => log);
    const wrong = `wrong-${Date.now()}`;
    const up = base.upstreams['app-pg'];
    withConfig(() => ({ upstreams: { ...base.upstreams, 'app-pg': { ...up, roles: { ...up.roles, reader: { ...up.roles.reader, password: new Secret(wrong, 'test') } } } } }));
    const token = await h.token();
    const refused = (await pgClient(h, token).connect().catch((e: unknown) => e)) as PgError;
    expect(refused.code).toBe('08004');
    expect(refused.message).toMatch(/upstream "app-pg" \(127\.0\.0\.1:\d+\) for role "reader" refused tokengate's own login: the gateway's credentials or database mapping for this role are misconfigured, so retrying will not help; tell a DBA/);
    const audit = await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'upstream_login_refused');
    expect(audit.message).toMatch(/28P01/);
    await waitFor(() => errors.mock.calls.length > 0, { what: 'the operational log line' });
    const line = String(errors.mock.calls[0][0]);
    expect(line).toMatch(/upstream "app-pg" \(127\.0\.0\.1:\d+\) for role "reader" refused the gateway's login: .*28P01 password authentication failed for user "agent_ro".*This is a configuration error/);
    // A flood of logins gives one line.
    await pgClient(h, await h.token()).connect().catch(() => undefined);
    expect(errors).toHaveBeenCalledTimes(1);

    const closed = await closedPort();
    withConfig(() => ({ upstreams: { ...base.upstreams, 'app-pg': { ...up, port: closed } } }));
    const unreachable = (await pgClient(h, token).connect().catch((e: unknown) => e)) as PgError;
    expect(unreachable.code).toBe('08001');
    expect(unreachable.message).toMatch(/could not open a connection to upstream "app-pg" \(127\.0\.0\.1:\d+\) for role "reader"; retry shortly/);
    await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'upstream_unavailable');
    await waitFor(() => warnings.mock.calls.some((c) => /ECONNREFUSED/.test(String(c[0]))), { what: 'the unreachable upstream on the log' });
    const logged = [...errors.mock.calls, ...warnings.mock.calls].map((c) => String(c[0])).join('\n');
    for (const secret of [wrong, ...h.secrets]) expect(logged).not.toContain(secret);
  });
});

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}
