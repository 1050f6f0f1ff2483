import { execFile } from 'node:child_process';
import * as net from 'node:net';
import { promisify } from 'node:util';
import {
  CLIENT_COMPRESS,
  CLIENT_DEPRECATE_EOF,
  CLIENT_LOCAL_FILES,
  CLIENT_MULTI_RESULTS,
  CLIENT_MULTI_STATEMENTS,
  CLIENT_PROTOCOL_41,
  COM_PING,
  FORMAT_CAPABILITIES,
  GATEWAY_CAPABILITIES,
  PacketFramer,
  ResponseTracker,
  captureForResponse,
  encodePacket,
  encodeQuery,
  encodeSimpleCommand,
} from '../../protocols/mysql';
import { Secret } from '../../src/config/secret';
import { MysqlLoginError, MysqlLoginOptions, connectMysqlUpstream, probeMysqlServerVersion } from '../../src/mysql/login';
import { MysqlCommandError, MysqlServerConnection } from '../../src/mysql/serverConnection';
import { recordWrites } from '../helpers/socketWrites';
import { waitFor } from '../helpers/waitFor';

/** Against the machine's MariaDB 10.11 on 127.0.0.1:3306 (no TLS there: see mysqlLoginTls.test.ts). */

const run = promisify(execFile);
async function rootSql(sql: string): Promise<string> {
  const { stdout } = await run('mariadb', ['--no-defaults', '-uroot', '-h127.0.0.1', '-P3306', '-N', '-B', '-e', sql]);
  return stdout.trim();
}

const USER = 'tg_h6_login';
const PASSWORD = 'Login-pw-7f3a9c';
const SWITCH_USER = 'tg_h6_switch';
const SWITCH_PASSWORD = 'Switch-pw-2b8d1e';
const DB = 'tg_h6_login_db';
const CLIENT_CAPS = (GATEWAY_CAPABILITIES & FORMAT_CAPABILITIES) >>> 0;
const open: MysqlServerConnection[] = [];

beforeAll(async () => {
  await rootSql(`
    DROP USER IF EXISTS '${USER}'@'%', '${SWITCH_USER}'@'%';
    CREATE DATABASE IF NOT EXISTS ${DB};
    CREATE USER '${USER}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('${PASSWORD}');
    GRANT ALL ON ${DB}.* TO '${USER}'@'%';
    GRANT ALL ON tg_h6_missing_db.* TO '${USER}'@'%';
    CREATE USER '${SWITCH_USER}'@'%' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('${SWITCH_PASSWORD}');`);
});
afterAll(async () => {
  for (const c of open) c.close();
  await rootSql(`DROP USER IF EXISTS '${USER}'@'%', '${SWITCH_USER}'@'%'; DROP DATABASE IF EXISTS ${DB};`);
});

function opts(over: Partial<MysqlLoginOptions> = {}): MysqlLoginOptions {
  return {
    host: '127.0.0.1', port: 3306, tls: 'disable', user: USER, password: new Secret(PASSWORD, 'test'), database: DB,
    capabilities: CLIENT_CAPS, characterSet: 45, connectTimeoutMs: 5000, ...over,
  };
}

async function login(o: MysqlLoginOptions): Promise<MysqlServerConnection> {
  const c = await connectMysqlUpstream(o);
  open.push(c);
  return c;
}

async function rows(c: MysqlServerConnection, sql: string): Promise<(string | null)[][]> {
  const r = await c.query(sql, 3000);
  expect(r.error).toBeUndefined();
  return r.rows ?? [];
}

describe('mysql_native_password login against MariaDB', () => {
  test('logs in, selects the database and reports the session', async () => {
    const c = await login(opts());
    expect(await rows(c, 'SELECT CONNECTION_ID(), CURRENT_USER(), DATABASE(), @@collation_connection')).toEqual([
      [String(c.threadId), `${USER}@%`, DB, 'utf8mb4_general_ci'],
    ]);
    expect(c.serverVersion).toMatch(/MariaDB/);
    expect(c.characterSet).toBe(45);
    expect(c.capabilities & FORMAT_CAPABILITIES).toBe(CLIENT_CAPS);
    expect(c.broken).toBe(false);
    expect(c.attached).toBe(true);
  });

  test('uses exactly the format capabilities asked for: classic EOF and no multi-statements', async () => {
    const caps = CLIENT_PROTOCOL_41 | CLIENT_MULTI_RESULTS;
    const c = await login(opts({ capabilities: caps, characterSet: 224 }));
    expect(c.capabilities & FORMAT_CAPABILITIES).toBe(caps);
    expect(c.capabilities & CLIENT_DEPRECATE_EOF).toBe(0);
    expect(await rows(c, "SELECT 1, NULL, 'x' UNION ALL SELECT 2, 'y', NULL")).toEqual([
      ['1', null, 'x'],
      ['2', 'y', null],
    ]);
    expect(await rows(c, 'SELECT @@collation_connection')).toEqual([['utf8mb4_unicode_ci']]);
    // Without CLIENT_MULTI_STATEMENTS the server refuses two statements in one COM_QUERY.
    const multi = await c.query('SELECT 1; SELECT 2', 3000);
    expect(multi.error?.code).toBe(1064);
  });

  test('COMPRESS and LOCAL_FILES are never negotiated upstream, even if asked', async () => {
    const c = await login(opts({ capabilities: (CLIENT_CAPS | CLIENT_COMPRESS | CLIENT_LOCAL_FILES) >>> 0 }));
    expect(c.capabilities & (CLIENT_COMPRESS | CLIENT_LOCAL_FILES)).toBe(0);
    expect(c.capabilities & FORMAT_CAPABILITIES).toBe(CLIENT_CAPS);
    expect(await rows(c, 'SELECT 1')).toEqual([['1']]);
  });

  test('with CLIENT_MULTI_STATEMENTS, every result set is collected', async () => {
    const c = await login(opts({ capabilities: CLIENT_CAPS | CLIENT_MULTI_STATEMENTS }));
    expect(await rows(c, "SELECT 'a'; SELECT 'b', 'c'")).toEqual([['a'], ['b', 'c']]);
  });

  test('no database: database "" logs in without one', async () => {
    const c = await login(opts({ database: '' }));
    expect(await rows(c, 'SELECT DATABASE()')).toEqual([[null]]);
  });

  test('a wrong password is MysqlLoginError 1045 and never shows the password', async () => {
    const wrong = 'Wrong-secret-91d0';
    const err = (await connectMysqlUpstream(opts({ password: new Secret(wrong, 'test') })).catch((e: unknown) => e)) as MysqlLoginError;
    expect(err).toBeInstanceOf(MysqlLoginError);
    expect(err.code).toBe(1045);
    expect(err.sqlState).toBe('28000');
    expect(err.message).toMatch(/refused the login of "tg_h6_login": ERROR 1045 \(28000\): Access denied/);
    expect(err.message).toMatch(/Check the role's user and password/);
    for (const text of [err.message, String(err.stack), JSON.stringify(err)]) {
      expect(text).not.toContain(wrong);
      expect(text).not.toContain(PASSWORD);
    }
  });

  test('a database the user may not use is 1044; one that does not exist is 1049; both with a hint', async () => {
    const denied = (await connectMysqlUpstream(opts({ database: 'mysql' })).catch((e: unknown) => e)) as MysqlLoginError;
    expect(denied).toBeInstanceOf(MysqlLoginError);
    expect(denied.code).toBe(1044);
    expect(denied.message).toMatch(/Grant the upstream user access to this database/);
    // Granted but missing: the server can say it does not exist.
    const missing = (await connectMysqlUpstream(opts({ database: 'tg_h6_missing_db' })).catch((e: unknown) => e)) as MysqlLoginError;
    expect(missing).toBeInstanceOf(MysqlLoginError);
    expect(missing.code).toBe(1049);
    expect(missing.message).toMatch(/does not exist on the server: fix the database mapping/);
  });

  test('a closed port is explained', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const err = (await connectMysqlUpstream(opts({ port })).catch((e: unknown) => e)) as MysqlLoginError;
    expect(err).toBeInstanceOf(MysqlLoginError);
    expect(err.message).toMatch(/Cannot connect to upstream MySQL .*ECONNREFUSED/);
  });

  test('a server that never greets hits the connect timeout', async () => {
    const sockets: net.Socket[] = [];
    const srv = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    const started = Date.now();
    const err = (await connectMysqlUpstream(opts({ port, connectTimeoutMs: 300 })).catch((e: unknown) => e)) as MysqlLoginError;
    expect(err).toBeInstanceOf(MysqlLoginError);
    expect(err.message).toMatch(/did not finish within 300 ms/);
    expect(Date.now() - started).toBeLessThan(3000);
    sockets.forEach((s) => s.destroy());
    await new Promise<void>((r) => srv.close(() => r()));
  });
});

describe('server-initiated AuthSwitchRequest (IDENTIFIED VIA unix_socket OR mysql_native_password)', () => {
  test('answers the switch to mysql_native_password with the new scramble', async () => {
    // A TCP tap between gateway and server records the server's packets, to see the switch happen.
    const fromServer: Buffer[] = [];
    const tap = net.createServer((client) => {
      const server = net.connect(3306, '127.0.0.1');
      server.on('data', (d) => {
        fromServer.push(d);
        client.write(d);
      });
      client.on('data', (d) => server.write(d));
      client.on('close', () => server.destroy());
      server.on('close', () => client.destroy());
      client.on('error', () => undefined);
      server.on('error', () => undefined);
    });
    await new Promise<void>((r) => tap.listen(0, '127.0.0.1', r));
    try {
      const port = (tap.address() as net.AddressInfo).port;
      const c = await login(opts({ port, user: SWITCH_USER, password: new Secret(SWITCH_PASSWORD, 'test'), database: '' }));
      expect(await rows(c, 'SELECT CURRENT_USER()')).toEqual([[`${SWITCH_USER}@%`]]);
      // Packet 2 from the server (after the greeting) is the AuthSwitchRequest.
      const stream = Buffer.concat(fromServer);
      const second = stream.subarray(4 + stream.readUIntLE(0, 3));
      expect(second[4]).toBe(0xfe);
      expect(second.subarray(5, 5 + 'mysql_native_password'.length).toString()).toBe('mysql_native_password');
      c.close();
    } finally {
      await new Promise<void>((r) => tap.close(() => r()));
    }
  });

  test('a wrong password after the switch is 1045', async () => {
    const err = (await connectMysqlUpstream(opts({ user: SWITCH_USER, password: new Secret('nope', 'test'), database: '' })).catch((e: unknown) => e)) as MysqlLoginError;
    expect(err).toBeInstanceOf(MysqlLoginError);
    expect(err.code).toBe(1045);
  });
});

describe('MysqlServerConnection', () => {
  test('command() and query(): OK with affected rows, rows, server errors leave it usable', async () => {
    const c = await login(opts());
    await rows(c, 'CREATE TEMPORARY TABLE t (id INT, v VARCHAR(20))');
    const ins = await c.query("INSERT INTO t VALUES (1, 'ä€😀'), (2, NULL)", 3000);
    expect(ins.ok?.affectedRows).toBe(2n);
    expect(ins.ok?.info).toMatch(/Records: 2/);
    expect(await rows(c, 'SELECT id, v FROM t ORDER BY id')).toEqual([['1', 'ä€😀'], ['2', null]]);
    const bad = await c.query('SELEC nonsense', 3000);
    expect(bad.error).toMatchObject({ code: 1064, sqlState: '42000' });
    expect(bad.error?.message).toMatch(/syntax/);
    const ping = await c.command(encodeSimpleCommand(COM_PING), 3000);
    expect(ping.ok).toBeDefined();
    expect(c.broken).toBe(false);
  });

  test('commands() pipelines: one write, one result per command in order; an ERR does not stop the rest', async () => {
    const c = await login(opts());
    const writes = recordWrites(c.socket);
    const results = await c.commands([
      encodeQuery("SET @tg_pipelined = 'x'"),
      encodeQuery('SELEC broken'),
      encodeSimpleCommand(COM_PING),
      encodeQuery('SELECT @tg_pipelined, 2'),
    ], 3000);
    expect(writes).toHaveLength(1);
    expect(results).toHaveLength(4);
    expect(results[0].ok).toBeDefined();
    expect(results[1].error).toMatchObject({ code: 1064 });
    expect(results[2].ok).toBeDefined();
    expect(results[3].rows).toEqual([['x', '2']]);
    expect(c.broken).toBe(false);
    expect(await rows(c, 'SELECT 3')).toEqual([['3']]);
  });

  test('statusFlags follow the transaction state', async () => {
    const c = await login(opts());
    await rows(c, 'START TRANSACTION');
    expect(c.statusFlags & 0x0001).toBe(0x0001); // SERVER_STATUS_IN_TRANS
    await rows(c, 'ROLLBACK');
    expect(c.statusFlags & 0x0001).toBe(0);
  });

  test('misuse is refused: a second command while one runs, command() while detached', async () => {
    const c = await login(opts());
    const first = c.query('SELECT SLEEP(0.2)', 3000);
    await expect(c.query('SELECT 1', 3000)).rejects.toThrow(/another internal command is running/);
    expect((await first).rows).toEqual([['0']]);
    const leftover = c.detach();
    expect(leftover.length).toBe(0);
    await expect(c.query('SELECT 1', 3000)).rejects.toBeInstanceOf(MysqlCommandError);
    c.attach();
    expect(await rows(c, 'SELECT 1')).toEqual([['1']]);
  });

  test('detach() hands the socket to a relay; killQuery() stops SELECT SLEEP(10) from a separate connection', async () => {
    const c = await login(opts());
    expect(c.detach().length).toBe(0);
    // Act as the relay: frame the server's packets and follow the response.
    const framer = new PacketFramer({ maxPayloadLength: 0xffffff, capture: captureForResponse });
    const tracker = new ResponseTracker(c.capabilities);
    tracker.begin(0x03);
    const done = new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        try {
          for (const p of framer.push(chunk)) {
            if (tracker.onPacket(p.payload, p.payloadLength) === 'done') {
              c.socket.removeListener('data', onData);
              resolve();
            }
          }
        } catch (err) {
          reject(err as Error);
        }
      };
      c.socket.on('data', onData);
    });
    const started = Date.now();
    c.socket.write(encodePacket(0, encodeQuery('SELECT SLEEP(10)')));
    const sleeping = `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ${c.threadId} AND INFO LIKE 'SELECT SLEEP%'`;
    await waitFor(async () => (await rootSql(sleeping)) === '1', { what: 'SELECT SLEEP(10) running upstream' });
    expect(await rootSql(sleeping)).toBe('1');
    await c.killQuery();
    await done;
    expect(Date.now() - started).toBeLessThan(5000);
    // SLEEP() interrupted by KILL QUERY returns 1 (or the server reports the interruption).
    const outcome = tracker.outcome!;
    expect(outcome.error ? outcome.error.code : outcome.rows).toBe(outcome.error ? 1317 : 1);
    c.attach();
    expect(await rows(c, 'SELECT CONNECTION_ID()')).toEqual([[String(c.threadId)]]);
    // The side connection is gone again.
    const killers = `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '${USER}' AND ID <> ${c.threadId} AND INFO LIKE 'KILL%'`;
    await waitFor(async () => (await rootSql(killers)) === '0', { what: 'the KILL QUERY side connection to leave the process list' });
    expect(await rootSql(killers)).toBe('0');
  });

  test('a session killed by the server while idle is marked broken', async () => {
    const c = await login(opts());
    await rootSql(`KILL ${c.threadId}`);
    await waitFor(() => c.broken, { what: 'the connection to notice the server killed it' });
    expect(c.broken).toBe(true);
    expect(c.brokenReason).toMatch(/socket closed|ended the session/);
    await expect(c.query('SELECT 1', 1000)).rejects.toThrow(/is broken/);
  });

  test('close() ends with COM_QUIT, the server drops the thread, and close is idempotent', async () => {
    const c = await login(opts());
    const end = jest.spyOn(c.socket, 'end');
    const closed = new Promise<void>((r) => c.socket.once('close', () => r()));
    c.close();
    c.close();
    await closed;
    expect(end).toHaveBeenCalledTimes(1);
    expect(Buffer.from(end.mock.calls[0][0] as Buffer).toString('hex')).toBe('0100000001');
    expect(c.broken).toBe(true);
    expect(c.brokenReason).toBe('closed by the gateway');
    const left = (): Promise<string> => rootSql(`SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ${c.threadId}`);
    await waitFor(async () => (await left()) === '0', { what: 'the server to drop the thread', timeoutMs: 3000, intervalMs: 50 });
    expect(await left()).toBe('0');
  });
});

describe('probeMysqlServerVersion', () => {
  test('returns the greeting version string of the server', async () => {
    const version = await probeMysqlServerVersion('127.0.0.1', 3306, 3000);
    const reported = await rootSql('SELECT VERSION()');
    expect(version.endsWith(reported)).toBe(true); // MariaDB prefixes "5.5.5-" in the greeting
  });

  test('a silent server times out with an explanation', async () => {
    const sockets: net.Socket[] = [];
    const srv = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await expect(probeMysqlServerVersion('127.0.0.1', port, 200)).rejects.toThrow(/sent no greeting within 200 ms/);
    sockets.forEach((s) => s.destroy());
    await new Promise<void>((r) => srv.close(() => r()));
  });
});
