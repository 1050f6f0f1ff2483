import net from 'node:net';
import type mysql from 'mysql2/promise';
import type { Config } from '../../src/config/schema';
import { Secret } from '../../src/config/secret';
import { log } from '../../src/log';
import { waitFor } from '../helpers/waitFor';
import { connectMysql2, mariadbCli, upstreamThreads } from '../integration/clients';
import { startGatewayHarness, type MysqlHarness } from '../integration/harness';

/**
 * Every limit of a MySQL session, through the real gateway to a real MariaDB with mysql2 and
 * the mariadb CLI: the connection caps answer 1040 / 1203, the idle timeouts 4031 (as MySQL
 * 8.0.24+ does past wait_timeout), the grant's session duration 1927 and its statement
 * timeout MariaDB's max_statement_time (not left on the pooled connection); an ended session's
 * running statement is killed upstream; upstream trouble reaches the operational log.
 */

type MyError = { errno?: number; sqlState?: string; message: string };
/** mysql2 puts the number of an ERR that answers no command (an unsolicited one) in `code`. */
const unsolicitedCode = (e: MyError & { code?: unknown }): unknown => e.errno ?? e.code;

describe('MySQL limits', () => {
  let h: MysqlHarness;
  let base: Config;
  const open: mysql.Connection[] = [];
  const withConfig = (change: (c: Config) => Partial<Config>): void => {
    h.gateway.config.swap({ ...base, ...change(base) });
  };
  const grantWith = (extra: Record<string, number>) => (c: Config): Partial<Config> => ({
    grants: c.grants.map((g) => (g.name === 'reporting-agents' ? { ...g, ...extra } : g)),
  });
  const connected = async (o: Parameters<typeof connectMysql2>[2] = {}, token?: string): Promise<mysql.Connection> => {
    const c = await connectMysql2(h, token ?? (await h.token()), o);
    c.on('error', () => undefined);
    open.push(c);
    return c;
  };
  const refusal = async (o: Parameters<typeof connectMysql2>[2] = {}): Promise<MyError> =>
    (await connectMysql2(h, await h.token(), o).then((c) => { open.push(c); return { message: 'connected' }; }, (e: unknown) => e)) as MyError;
  const nextError = (c: mysql.Connection): Promise<MyError> => new Promise((resolve) => c.once('error', (e) => resolve(e as MyError)));

  beforeAll(async () => {
    h = await startGatewayHarness({ protocol: 'mysql', pool: '{ maxConnections: 1, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 3s }' });
    base = h.gateway.config.current();
  });
  afterEach(async () => {
    for (const c of open.splice(0)) c.destroy();
    h.gateway.config.swap(base);
    await waitFor(() => h.gateway.sessions.size === 0, { what: 'every session of the test to end' });
    jest.restoreAllMocks();
  });
  afterAll(async () => {
    await h?.stop();
  });

  test('limits.maxClientConnections answers 1040 in place of the greeting', async () => {
    withConfig(() => ({ limits: { ...base.limits, maxClientConnections: 1 } }));
    const socket = net.connect(h.port, '127.0.0.1');
    try {
      await new Promise((r) => socket.once('connect', r));
      await waitFor(() => h.gateway.state.leases.count('clients') === 1, { what: 'the first connection to count' });
      const cli = await mariadbCli(h, await h.token(), 'SELECT 1');
      expect(cli.code).not.toBe(0);
      expect(cli.stderr).toMatch(/ERROR 1040 \(08004\).*tokengate has reached its limit of 1 client connections \(limits\.maxClientConnections\)/);
      const err = await refusal();
      expect(err.errno).toBe(1040);
      await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'client_connection_limit');
    } finally {
      socket.destroy();
    }
  });

  test('limits.maxConnectionsPerIdentity answers 1203 (ER_TOO_MANY_USER_CONNECTIONS)', async () => {
    withConfig(() => ({ limits: { ...base.limits, maxConnectionsPerIdentity: 1 } }));
    await connected();
    const err = await refusal();
    expect(err.errno).toBe(1203);
    expect(err.sqlState).toBe('42000');
    expect(err.message).toMatch(/limits\.maxConnectionsPerIdentity is 1/);
    await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'identity_connection_limit');
  });

  test("a grant's maxConnections answers 1040, also at the first USE of a session that named no database", async () => {
    withConfig(grantWith({ maxConnections: 1 }));
    await connected();
    const err = await refusal();
    expect(err.errno).toBe(1040);
    expect(err.message).toMatch(/grant "reporting-agents" allows at most 1 sessions at once/);
    await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'grant_connection_limit');
    const later = await connected({ database: undefined });
    const use = (await later.query('USE app').catch((e: unknown) => e)) as MyError;
    expect(use.errno).toBe(1040);
  });

  test('session.idleTimeout ends an idle session with 4031 (ER_CLIENT_INTERACTION_TIMEOUT)', async () => {
    withConfig(() => ({ session: { ...base.session, idleTimeoutMs: 1000 } }));
    const c = await connected();
    await c.query('SELECT SLEEP(1.3)'); // busy, not idle
    const err = await nextError(c);
    expect(unsolicitedCode(err)).toBe(4031);
    expect(err.message).toMatch(/idle-session timeout: tokengate ends sessions idle for 1s \(session\.idleTimeout\)/);
    await h.audit.waitFor((e) => e.event === 'session_end' && e.reason === 'idle_timeout');
  });

  test('session.idleInTransactionTimeout ends a session idle inside a transaction with 4031', async () => {
    withConfig(() => ({ session: { ...base.session, idleInTransactionTimeoutMs: 1000 } }));
    const c = await connected();
    await c.query('START TRANSACTION');
    const err = await nextError(c);
    expect(unsolicitedCode(err)).toBe(4031);
    expect(err.message).toMatch(/idle-in-transaction timeout/);
    await h.audit.waitFor((e) => e.event === 'session_end' && e.reason === 'idle_in_transaction_timeout');
  });

  test("a grant's maxSessionDuration ends the session with 1927", async () => {
    withConfig(grantWith({ maxSessionDurationMs: 1000 }));
    const c = await connected();
    const err = await nextError(c);
    expect(unsolicitedCode(err)).toBe(1927);
    expect(err.message).toMatch(/its maxSessionDuration/);
    await h.audit.waitFor((e) => e.event === 'session_end' && e.reason === 'max_session_duration');
  });

  test("a grant's statementTimeout sets MariaDB's max_statement_time for the session only", async () => {
    withConfig(grantWith({ statementTimeoutMs: 300 }));
    const c = await connected();
    const [[{ thread, limit }]] = (await c.query('SELECT CONNECTION_ID() AS thread, @@max_statement_time AS `limit`')) as unknown as [[{ thread: number; limit: number }]];
    expect(Number(limit)).toBeCloseTo(0.3);
    const err = (await c.query('SELECT SLEEP(5) FROM DUAL WHERE 1').catch((e: unknown) => e)) as MyError & { rows?: unknown };
    // MariaDB answers 1969 ER_STATEMENT_TIMEOUT: "Query execution was interrupted (max_statement_time exceeded)".
    expect(err.errno).toBe(1969);
    c.destroy();
    open.length = 0;

    h.gateway.config.swap(base);
    await waitFor(() => Object.values(h.gateway.pools.stats('mysql')).some((s) => s.idle === 1 && s.active === 0), { what: 'the connection back in the pool' });
    const next = await connected();
    const [[after]] = (await next.query('SELECT CONNECTION_ID() AS thread, @@max_statement_time AS `limit`')) as unknown as [[{ thread: number; limit: number }]];
    expect(after.thread).toBe(thread);
    expect(Number(after.limit)).toBe(0);
  });

  test('a session ended by shutdown or kill has its running statement killed upstream', async () => {
    const other = await h.startGateway({});
    // Wrapped: an async function returning a promise would wait for the query itself.
    const sleeping = async (port: number, sql: string): Promise<{ err: Promise<MyError> }> => {
      const c = await connectMysql2({ ...h, port } as never, await h.token());
      c.on('error', () => undefined);
      open.push(c);
      const err = c.query(sql).then((r) => ({ message: `no error: ${JSON.stringify(r[0])}` }), (e: unknown) => e as MyError);
      await waitFor(async () => (await upstreamThreads(h, h.names.ro)).some((t) => t.INFO === sql), { what: `${sql} running upstream` });
      return { err };
    };
    const gone = (sql: string): Promise<unknown> => waitFor(async () => !(await upstreamThreads(h, h.names.ro)).some((t) => t.INFO === sql),
      { what: `${sql} gone from the process list`, timeoutMs: 3000 });

    const shut = await sleeping(other.port, 'SELECT SLEEP(30)');
    await other.gateway.close();
    // close() resolved after the session had ended, i.e. once its statement was cancelled: a process may exit now.
    expect(other.audit.ofEvent('session_end').map((e) => e.reason)).toEqual(['shutdown']);
    expect((await shut.err).errno).toBe(1053);
    await gone('SELECT SLEEP(30)');

    const killed = await sleeping(h.port, 'SELECT SLEEP(31)');
    h.gateway.sessions.endAll('killed', 'an operator ended this session', { protocol: 'mysql' });
    expect((await killed.err).errno).toBe(1927);
    await gone('SELECT SLEEP(31)');
  });

  test("an upstream refusing the gateway's login is a configuration error; an unreachable one is not", async () => {
    const errors = jest.spyOn(log, 'error').mockImplementation(() => log);
    const warnings = jest.spyOn(log, 'warn').mockImplementation(() => log);
    const wrong = `wrong-${Date.now()}`;
    const up = base.upstreams['app-my'];
    withConfig(() => ({ upstreams: { ...base.upstreams, 'app-my': { ...up, roles: { ...up.roles, reader: { ...up.roles.reader, password: new Secret(wrong, 'test') } } } } }));
    const refused = await refusal();
    expect(refused.errno).toBe(1105);
    expect(refused.message).toMatch(/refused tokengate's own login: the gateway's credentials or database mapping for this role are misconfigured, so retrying will not help/);
    await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'upstream_login_refused');
    await waitFor(() => errors.mock.calls.length > 0, { what: 'the operational log line' });
    expect(String(errors.mock.calls[0][0])).toMatch(/upstream "app-my" \(127\.0\.0\.1:3306\) for role "reader" refused the gateway's login: .*ERROR 1045.*This is a configuration error/);

    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((r) => server.close(r));
    withConfig(() => ({ upstreams: { ...base.upstreams, 'app-my': { ...up, port } } }));
    const unreachable = await refusal();
    expect(unreachable.errno).toBe(1105);
    expect(unreachable.message).toMatch(/could not open a connection to upstream "app-my" .*; retry shortly/);
    await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'upstream_unavailable');
    await waitFor(() => warnings.mock.calls.some((c) => /ECONNREFUSED/.test(String(c[0]))), { what: 'the unreachable upstream on the log' });
    const logged = [...errors.mock.calls, ...warnings.mock.calls].map((c) => String(c[0])).join('\n');
    for (const secret of [wrong, ...h.secrets]) expect(logged).not.toContain(secret);
  });
});
