import crypto from 'node:crypto';
import path from 'node:path';
import { spawn } from 'node:child_process';
import type mysql from 'mysql2/promise';
import { startGatewayHarness, type MysqlHarness } from './harness';
import { connectMysql2, mariadbCli, run, upstreamThreads } from './clients';
import { waitFor } from '../helpers/waitFor';
import { makeTestCertificates } from '../helpers/tlsCert';
import { runAgent } from '../../examples/mysql2-agent';
import * as mysqlAuth from '../../protocols/mysql/auth';

/**
 * End to end on the MySQL listener: the local MariaDB with gateway-held native passwords, the
 * dev OIDC issuer, the gateway, and real clients (mariadb CLI, mysql2, PyMySQL, MySQLdb)
 * that put an access token where the password goes.
 */
let h: MysqlHarness;
const certs = makeTestCertificates();
const EXAMPLES = path.join(__dirname, '..', '..', 'examples');

beforeAll(async () => {
  h = await startGatewayHarness({ protocol: 'mysql', tls: { certFile: certs.certFile, keyFile: certs.keyFile } });
}, 60000);

afterAll(async () => {
  await h?.stop();
  certs.cleanup();
});

type Row = mysql.RowDataPacket;

async function withConn<T>(token: string, fn: (c: mysql.Connection) => Promise<T>, o: Partial<mysql.ConnectionOptions> = {}): Promise<T> {
  const c = await connectMysql2(h, token, o);
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

const since = (t: number) => (e: Record<string, unknown>) => Number(new Date(String(e.timestamp))) >= t - 50;

describe('the stock mariadb CLI', () => {
  test('logs in with the token in MYSQL_PWD and runs as the gateway-held upstream user', async () => {
    const started = Date.now();
    const r = await mariadbCli(h, await h.token(), 'SELECT SUBSTRING_INDEX(CURRENT_USER(), "@", 1), DATABASE(), COUNT(*) FROM items');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\t')).toEqual([h.names.ro, h.names.app, '10']);
    const accepted = await h.audit.waitFor((e) => e.event === 'connection_accepted' && since(started)(e));
    expect(accepted).toMatchObject({
      protocol: 'mysql', sub: 'svc-reporting', cid: 'svc-reporting', grant: 'reporting-agents', upstream: 'app-my', role: 'reader',
      database: 'app', upstreamDatabase: h.names.app, applicationName: 'mysql', tls: false, groups: ['db-readers'],
    });
    await h.audit.waitFor((e) => e.event === 'query' && e.sessionId === accepted.sessionId && String(e.sql).includes('COUNT(*) FROM items') && e.tag === '1 rows');
    await h.audit.waitFor((e) => e.event === 'session_end' && e.sessionId === accepted.sessionId && e.reason === 'client_quit' && e.upstreamReused === true);
  });

  test('examples/mariadb-cli.sh, over TLS (the CLI uses it when the gateway offers it)', async () => {
    const started = Date.now();
    const r = await run('bash', [path.join(EXAMPLES, 'mariadb-cli.sh'), '--batch', '--skip-column-names', `--ssl-ca=${certs.caFile}`, '-e', 'SELECT name FROM items WHERE id = 7'], {
      TOKENGATE_TOKEN: await h.token(), TOKENGATE_MYSQL_PORT: String(h.port), TOKENGATE_ROLE: 'reader', TOKENGATE_DATABASE: 'app',
    });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('item 7');
    await h.audit.waitFor((e) => e.event === 'connection_accepted' && e.tls === true && since(started)(e));
  });

  test('Ctrl-C sends KILL QUERY <gateway id> on a new connection, which interrupts the query upstream', async () => {
    const token = await h.token();
    // With and without a database at login: the CLI's kill connection never names one.
    for (const [i, [db, use]] of [['-Dapp', ''], ['', 'USE analytics; ']].entries()) {
      const marker = `ctrl_c_${i}_${Date.now()}`; // each wait must see this CLI's statement, not an earlier one
      const started = Date.now();
      const args = ['--no-defaults', '-h127.0.0.1', `-P${h.port}`, '-ureader', '--skip-ssl', ...(db ? [db] : []), '-e', `${use}SELECT SLEEP(10) AS ${marker}`];
      const child = spawn('mariadb', args, { env: { ...process.env, MYSQL_PWD: token } });
      let output = '';
      child.stdout.on('data', (d) => (output += d));
      child.stderr.on('data', (d) => (output += d));
      const closed = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
      await waitForUpstream(h.names.ro, (t) => (t.INFO ?? '').includes(marker));
      child.kill('SIGINT');
      expect({ ...(await closed), output }).toMatchObject({ code: 1 }); // on failure this shows the signal and the CLI's output
      expect(output).toMatch(/Ctrl-C -- query killed/);
      expect(output).toMatch(/ERROR 1317 .*interrupted/);
      expect(Date.now() - started).toBeLessThan(8000);
      await h.audit.waitFor((e) => e.event === 'query' && /^KILL QUERY \d+$/.test(String(e.sql)) && e.tag === 'OK (tokengate)' && since(started)(e));
    }
  });
});

describe('mysql2 (enableCleartextPlugin: true)', () => {
  test('queries, prepared statements (audited with their SQL), multi-statements, error then continue', async () => {
    const token = await h.token('0oa1svcbilling');
    const started = Date.now();
    await withConn(token, async (c) => {
      const [who] = await c.query<Row[]>('SELECT CURRENT_USER() AS u, DATABASE() AS d');
      expect(who[0]).toEqual({ u: `${h.names.rw}@%`, d: h.names.app });
      const [a] = await c.execute<Row[]>('SELECT name FROM items WHERE id = ?', [3]);
      const [b] = await c.execute<Row[]>('SELECT name FROM items WHERE id = ?', [4]);
      expect([a[0].name, b[0].name]).toEqual(['item 3', 'item 4']);
      const [sets] = await c.query<Row[][]>("SELECT 1 AS one; UPDATE items SET name = name WHERE id = 99; SELECT 'a' AS s, 2 AS n");
      expect(sets[0]).toEqual([{ one: 1 }]);
      expect((sets[1] as unknown as mysql.ResultSetHeader).affectedRows).toBe(0);
      expect(sets[2]).toEqual([{ s: 'a', n: 2 }]);
      await expect(c.query('SELECT * FROM no_such_table')).rejects.toMatchObject({ errno: 1146, sqlState: '42S02' });
      await expect(c.query('SELEC 1')).rejects.toMatchObject({ errno: 1064 });
      await c.query('START TRANSACTION');
      await c.query("INSERT INTO items VALUES (100, 'hundred')");
      await expect(c.query("INSERT INTO items VALUES (100, 'again')")).rejects.toMatchObject({ errno: 1062 });
      await c.query('ROLLBACK');
      const [after] = await c.query<Row[]>('SELECT COUNT(*) AS n FROM items');
      expect(after[0].n).toBe(10);
    }, { user: 'writer', multipleStatements: true });
    await h.audit.waitFor((e) => e.event === 'query' && e.sql === 'SELECT name FROM items WHERE id = ?' && e.tag === '1 rows' && since(started)(e));
    await h.audit.waitFor((e) => e.event === 'query' && String(e.sql).startsWith('SELECT 1 AS one;') && e.tag === '1 rows, OK 0, 1 rows');
    await h.audit.waitFor((e) => e.event === 'query' && e.sql === 'SELECT * FROM no_such_table' && e.sqlState === '42S02' && String(e.error).startsWith('ERROR 1146'));
    await h.audit.waitFor((e) => e.event === 'query' && e.sql === 'ROLLBACK' && e.tag === 'OK 0');
  });

  test('utf8mb4 round-trips (emoji in text and binary protocol)', async () => {
    await withConn(await h.token(), async (c) => {
      const [t] = await c.query<Row[]>("SELECT '🦄 ünïcödé 漢字' AS s, CHAR_LENGTH('🦄') AS n");
      expect(t[0]).toEqual({ s: '🦄 ünïcödé 漢字', n: 1 });
      const [p] = await c.execute<Row[]>('SELECT ? AS s, HEX(?) AS h', ['😀', '😀']);
      expect(p[0]).toEqual({ s: '😀', h: 'F09F9880' });
      await c.query('CREATE TEMPORARY TABLE emoji (s VARCHAR(10)) CHARACTER SET utf8mb4');
      await c.execute('INSERT INTO emoji VALUES (?)', ['👩‍💻']);
      const [back] = await c.query<Row[]>('SELECT s FROM emoji');
      expect(back[0].s).toBe('👩‍💻');
    }, { charset: 'utf8mb4_unicode_ci' });
  });

  test('a 100k-row result arrives intact, text and binary protocol (checksum)', async () => {
    const expected = crypto.createHash('sha256');
    for (let g = 1; g <= 100000; g++) expected.update(`${g}:${crypto.createHash('md5').update(String(g)).digest('hex')}\n`);
    const want = expected.digest('hex');
    await withConn(await h.token(), async (c) => {
      for (const mode of ['query', 'execute'] as const) {
        const [rows] = mode === 'query'
          ? await c.query<Row[]>('SELECT seq AS g, MD5(seq) AS m FROM seq_1_to_100000')
          : await c.execute<Row[]>('SELECT seq AS g, MD5(seq) AS m FROM seq_1_to_100000 WHERE seq >= ?', [1]);
        expect(rows.length).toBe(100000);
        const got = crypto.createHash('sha256');
        for (const r of rows) got.update(`${r.g}:${r.m}\n`);
        expect(got.digest('hex')).toBe(want);
      }
      // One 5 MB value: a packet spread over many TCP chunks.
      const [big] = await c.query<Row[]>("SELECT REPEAT('x', 5000000) AS v, MD5(REPEAT('x', 5000000)) AS m");
      expect(crypto.createHash('md5').update(big[0].v as string).digest('hex')).toBe(big[0].m);
      // Long statements the gateway streams upstream instead of holding (> 64 KiB, several MB).
      for (const size of [200_000, 3_000_000]) {
        const literal = 'y'.repeat(size);
        const [len] = await c.query<Row[]>(`SELECT LENGTH('${literal}') AS n`);
        expect(len[0].n).toBe(size);
      }
    });
  });

  test('USE / changeUser-free database switching: granted aliases only, translated to the real name', async () => {
    const started = Date.now();
    await withConn(await h.token(), async (c) => {
      const [switched] = await c.query<mysql.ResultSetHeader>('USE analytics');
      // Session tracking reports the alias, so drivers that follow it reconnect to the alias, not the real name.
      expect((switched as mysql.ResultSetHeader & { stateChanges?: { schema: string | null } }).stateChanges?.schema).toBe('analytics');
      const [d] = await c.query<Row[]>('SELECT DATABASE() AS d, (SELECT value FROM metrics WHERE name = "visits") AS v');
      expect(d[0]).toEqual({ d: h.names.analytics, v: 42 });
      // COM_INIT_DB (mysql2 has no API for it; changeUser is refused, see below): USE back via a query.
      await c.query('use `app`');
      const [d2] = await c.query<Row[]>('SELECT DATABASE() AS d');
      expect(d2[0].d).toBe(h.names.app);
      // The real name is not an alias: the upstream user could read it, the gateway does not route there.
      await expect(c.query(`USE ${h.names.hidden}`)).rejects.toMatchObject({ errno: 1049, sqlState: '42000', message: expect.stringMatching(/does not exist on this gateway.*app, analytics/) });
      await expect(c.query('USE payroll')).rejects.toMatchObject({ errno: 1049 });
      await expect(c.query('SELECT 1; USE analytics')).rejects.toMatchObject({ errno: 1105, message: expect.stringMatching(/USE must be sent as a statement of its own/) });
      const [still] = await c.query<Row[]>('SELECT DATABASE() AS d');
      expect(still[0].d).toBe(h.names.app);
    }, { multipleStatements: true });
    await h.audit.waitFor((e) => e.event === 'query' && e.sql === 'USE analytics' && e.tag === 'OK (tokengate)' && since(started)(e));
    await h.audit.waitFor((e) => e.event === 'query' && e.sql === `USE ${h.names.hidden}` && String(e.error).startsWith('ERROR 1049'));
    // A grant for app only: USE analytics is refused with 1044 and says what is granted.
    await withConn(await h.token('0oa1svcbilling'), async (c) => {
      await expect(c.query('USE analytics')).rejects.toMatchObject({ errno: 1044, sqlState: '42000', message: expect.stringMatching(/"analytics" is not granted.*app/) });
    }, { user: 'writer' });
  });

  test('TLS with the CA verified (the audit records tls: true)', async () => {
    const started = Date.now();
    const report = await runAgent({ host: '127.0.0.1', port: h.port, role: 'reader', database: 'app', token: await h.token(), caFile: certs.caFile });
    expect(report).toMatchObject({ upstreamUser: h.names.ro, tls: true, items: [{ id: 1, name: 'item 1' }, { id: 2, name: 'item 2' }, { id: 3, name: 'item 3' }] });
    expect(report.threadId).toBeGreaterThanOrEqual(2 ** 30);
    await h.audit.waitFor((e) => e.event === 'connection_accepted' && e.tls === true && e.applicationName === 'Node-MySQL-2' && since(started)(e));
    await h.audit.waitFor((e) => e.event === 'query' && e.sql === 'SELECT id, name FROM items WHERE id <= ? ORDER BY id' && e.tag === '3 rows');
  });

  test('without enableCleartextPlugin mysql2 refuses to send the token (and says how to fix it)', async () => {
    const started = Date.now();
    const err = await connectMysql2(h, await h.token(), { enableCleartextPlugin: false }).then(
      () => { throw new Error('connected without the cleartext plugin'); },
      (e: { code?: string; message: string }) => e,
    );
    expect(err.code).toBe('MYSQL_CLEAR_PASSWORD_NOT_ENABLED');
    expect(err.message).toMatch(/enableCleartextPlugin/);
    const audit = await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'client_closed_during_auth' && since(started)(e));
    expect(audit.message).toMatch(/enableCleartextPlugin: true/);
  });

  test('COM_CHANGE_USER is refused with a message that says to reconnect', async () => {
    const c = await connectMysql2(h, await h.token());
    await expect(c.changeUser({ user: 'writer', password: 'x' })).rejects.toMatchObject({ errno: 1045, message: expect.stringMatching(/does not support COM_CHANGE_USER.*connect again/) });
    c.destroy();
  });
});

describe('KILL with tokengate connection ids', () => {
  test('KILL QUERY <threadId> from a second connection interrupts SELECT SLEEP(10); the session goes on', async () => {
    const token = await h.token();
    const a = await connectMysql2(h, token);
    const b = await connectMysql2(h, token);
    try {
      expect(a.threadId).toBeGreaterThanOrEqual(2 ** 30);
      const started = Date.now();
      const sleeping = a.query('SELECT SLEEP(10) AS first_sleep').then(() => undefined, (e: { errno?: number }) => e);
      await waitForUpstream(h.names.ro, (t) => (t.INFO ?? '').includes('first_sleep'));
      await b.query(`KILL QUERY ${a.threadId}`);
      expect(await sleeping).toMatchObject({ errno: 1317 });
      expect(Date.now() - started).toBeLessThan(8000);
      const [r] = await a.query<Row[]>('SELECT 2 AS two');
      expect(r[0].two).toBe(2);
      // CONNECTION_ID() in SQL is the upstream's id: KILL accepts it for the caller's own session too.
      const [[{ id }]] = (await a.query('SELECT CONNECTION_ID() AS id')) as unknown as [[{ id: number }]];
      const again = a.query('SELECT SLEEP(10) AS second_sleep').then(() => undefined, (e: { errno?: number }) => e);
      await waitForUpstream(h.names.ro, (t) => (t.INFO ?? '').includes('second_sleep'));
      await b.query(`KILL QUERY ${id}`);
      expect(await again).toMatchObject({ errno: 1317 });
    } finally {
      await a.end().catch(() => undefined);
      await b.end().catch(() => undefined);
    }
  });

  test("another identity cannot kill (or even see) a session: 1094 Unknown thread id", async () => {
    const victim = await connectMysql2(h, await h.token());
    const other = await connectMysql2(h, await h.token('0oa1svcbilling'), { user: 'writer' });
    try {
      const sleeping = victim.query<Row[]>('SELECT SLEEP(2) AS s');
      await waitForUpstream(h.names.ro, (t) => /SLEEP\(2\) AS s/.test(t.INFO ?? ''));
      await expect(other.query(`KILL QUERY ${victim.threadId}`)).rejects.toMatchObject({ errno: 1094, message: `Unknown thread id: ${victim.threadId}` });
      await expect(other.query(`KILL ${victim.threadId}`)).rejects.toMatchObject({ errno: 1094 });
      await expect(other.query('KILL 123456')).rejects.toMatchObject({ errno: 1094 });
      const [rows] = await sleeping;
      expect(rows[0].s).toBe(0); // ran to the end
    } finally {
      await victim.end().catch(() => undefined);
      await other.end().catch(() => undefined);
    }
  });

  test('KILL CONNECTION ends the other session of the same identity', async () => {
    const token = await h.token();
    const victim = await connectMysql2(h, token);
    const killer = await connectMysql2(h, token);
    const errors: { code?: unknown; message: string }[] = [];
    victim.on('error', (e: { code?: unknown; message: string }) => errors.push(e));
    try {
      await killer.query(`KILL CONNECTION ${victim.threadId}`);
      // The idle victim gets an unsolicited ERR; mysql2 reports it as a connection error.
      await waitFor(() => errors.length > 0, { what: "the killed session's connection error" });
      expect(errors[0]).toMatchObject({ code: 1927, message: expect.stringMatching(/Connection was killed/) });
      await expect(victim.query('SELECT 1')).rejects.toBeTruthy();
      await h.audit.waitFor((e) => e.event === 'session_end' && e.reason === 'killed');
    } finally {
      victim.destroy();
      await killer.end().catch(() => undefined);
    }
  });
});

test('session isolation: user variables, temporary tables, session settings and open transactions never leak across pooled sessions', async () => {
  const token = await h.token();
  const upstreamIds = new Set<number>();
  for (let i = 0; i < 20; i++) {
    await withConn(token, async (c) => {
      const [seen] = await c.query<Row[]>('SELECT @marker AS marker, @@in_transaction AS tx, @@session.sql_mode AS mode, @@session.time_zone AS tz, CONNECTION_ID() AS id');
      upstreamIds.add(seen[0].id);
      expect(seen[0]).toMatchObject({ marker: null, tx: 0 });
      expect(seen[0].mode).not.toMatch(/ANSI_QUOTES/);
      expect(seen[0].tz).toBe('SYSTEM');
      await c.query(`SET @marker = 'session-${i}', SESSION sql_mode = 'ANSI_QUOTES', time_zone = '+05:00'`);
      // Fails with 1050 "already exists" if a previous session's temporary table survived.
      await c.query('CREATE TEMPORARY TABLE scratch (x INT)');
      await c.query('INSERT INTO scratch VALUES (1)');
      if (i % 3 === 0) await c.query('START TRANSACTION'); // left open: the pool must reset it
    });
  }
  // The pool reused upstream connections rather than opening 20 (maxConnections is 4).
  expect(upstreamIds.size).toBeGreaterThan(0);
  expect(upstreamIds.size).toBeLessThanOrEqual(4);
  const open = (await upstreamThreads(h, h.names.ro)).map((t) => Number(t.ID));
  expect([...upstreamIds].some((id) => open.includes(id))).toBe(true);
});

describe('Python drivers from Debian (/usr/bin/python3)', () => {
  test('PyMySQL: examples/pymysql_agent.py', async () => {
    const r = await run('/usr/bin/python3', [path.join(EXAMPLES, 'pymysql_agent.py')], {
      TOKENGATE_TOKEN: await h.token(), TOKENGATE_MYSQL_PORT: String(h.port), TOKENGATE_DATABASE: 'analytics', TOKENGATE_CA_FILE: '',
    });
    // analytics has no items table: the example must report the error, not hide it.
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/1146.*items.*doesn't exist/);
    const ok = await run('/usr/bin/python3', [path.join(EXAMPLES, 'pymysql_agent.py')], {
      TOKENGATE_TOKEN: await h.token(), TOKENGATE_MYSQL_PORT: String(h.port), TOKENGATE_CA_FILE: certs.caFile,
    });
    expect(ok.stderr).toBe('');
    const report = JSON.parse(ok.stdout);
    expect(report).toMatchObject({ upstreamUser: h.names.ro, database: h.names.app, items: [{ id: 1, name: 'item 1' }, { id: 2, name: 'item 2' }, { id: 3, name: 'item 3' }] });
    expect(report.threadId).toBeGreaterThanOrEqual(2 ** 30);
  });

  test('MySQLdb (mysqlclient on libmariadb): parameters and utf8mb4', async () => {
    const script = `
import os, MySQLdb
conn = MySQLdb.connect(host='127.0.0.1', port=${h.port}, user='reader', database='app', password=os.environ['TOKEN'], charset='utf8mb4')
cur = conn.cursor()
cur.execute('SELECT CURRENT_USER(), COUNT(*) FROM items WHERE id > %s', (5,))
user, n = cur.fetchone()
cur.execute("SELECT 'ü🦄'")
s, = cur.fetchone()
print(user.split('@')[0], n, s)
conn.close()
`;
    const r = await run('/usr/bin/python3', ['-c', script], { TOKEN: await h.token() });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`${h.names.ro} 5 ü🦄`);
  });
});

test('on loopback the greeting offers mysql_clear_password: libmariadb clients send the token at once, others are asked with an AuthSwitchRequest', async () => {
  const switches = jest.spyOn(mysqlAuth, 'encodeAuthSwitchRequest');
  try {
    const cli = await mariadbCli(h, await h.token(), 'SELECT 1');
    expect(cli.stdout.trim()).toBe('1');
    const mysqldb = await run('/usr/bin/python3', ['-c', `
import os, MySQLdb
c = MySQLdb.connect(host='127.0.0.1', port=${h.port}, user='reader', database='app', password=os.environ['TOKEN'])
cur = c.cursor(); cur.execute('SELECT 2'); print(cur.fetchone()[0])
`], { TOKEN: await h.token() });
    expect(mysqldb.stdout.trim()).toBe('2');
    expect(switches).not.toHaveBeenCalled(); // one round trip fewer per login
    const pymysql = await run('/usr/bin/python3', ['-c', `
import os, pymysql
c = pymysql.connect(host='127.0.0.1', port=${h.port}, user='reader', database='app', password=os.environ['TOKEN'])
cur = c.cursor(); cur.execute('SELECT 3'); print(cur.fetchone()[0])
`], { TOKEN: await h.token() });
    expect(pymysql.stdout.trim()).toBe('3');
    expect(switches).toHaveBeenCalledTimes(1); // PyMySQL answers a clear-password greeting with an empty native reply
    await withConn(await h.token(), async (c) => expect((await c.query<Row[]>('SELECT 4 AS n'))[0]).toEqual([{ n: 4 }]));
    expect(switches).toHaveBeenCalledTimes(2); // mysql2 without TLS starts with mysql_native_password
  } finally {
    switches.mockRestore();
  }
});

test('no token, password or client secret appears in any audit line', () => {
  const joined = h.audit.lines.join('\n');
  expect(h.audit.lines.length).toBeGreaterThan(20);
  for (const secret of h.secrets) expect(joined).not.toContain(secret);
});

/** Waits until one of `user`'s upstream threads matches (e.g. is running a statement). */
async function waitForUpstream(user: string, pred: (t: { INFO: string | null }) => boolean, timeoutMs = 8000): Promise<void> {
  await waitFor(async () => (await upstreamThreads(h, user)).some(pred), { what: `an upstream thread of ${user} that matches`, timeoutMs, intervalMs: 50 });
}
