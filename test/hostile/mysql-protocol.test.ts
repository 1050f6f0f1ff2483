import crypto from 'node:crypto';
import mysql from 'mysql2/promise';
import {
  CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
  CLIENT_SSL,
  GATEWAY_CAPABILITIES,
  MAX_CLEAR_PASSWORD_BYTES,
  MAX_PACKET_PAYLOAD,
  UTF8MB4_GENERAL_CI,
  encodeClearPassword,
  encodeHandshakeResponse41,
  encodeQuery,
  encodeSslRequest,
} from '../../protocols/mysql';
import { startGatewayHarness, AUDIENCE, type MysqlHarness } from '../integration/harness';
import { connectMysql2 } from '../integration/clients';
import { makeTestCertificates } from '../helpers/tlsCert';
import { waitFor } from '../helpers/waitFor';
import { fakeMysql, gatewayOn, TRIGGER } from './fakeUpstream';
import { RawConn, encodePacket, myError, myPackets } from './wire';

/**
 * Hostile input on the MySQL listener, over raw sockets against a real gateway and the real
 * MariaDB: every case ends within its timeout with a MySQL ERR packet (code and SQLSTATE), and
 * the gateway goes on serving. docs/security.md lists them.
 */
let h: MysqlHarness;
const certs = makeTestCertificates();
const AUTH_TIMEOUT_MS = 1000;
const CUT_MS = AUTH_TIMEOUT_MS + 9000;

beforeAll(async () => {
  h = await startGatewayHarness({
    protocol: 'mysql',
    authTimeout: `${AUTH_TIMEOUT_MS / 1000}s`,
    pool: '{ maxConnections: 4, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 5s }',
    tls: { certFile: certs.certFile, keyFile: certs.keyFile },
  });
}, 120000);

afterAll(async () => {
  await h?.stop();
  certs.cleanup();
});

async function stillServing(): Promise<void> {
  const c = await connectMysql2(h, await h.token(), { database: 'app' });
  try {
    const [rows] = await c.query('SELECT COUNT(*) AS n FROM items');
    expect((rows as { n: number }[])[0].n).toBe(10);
  } finally {
    await c.end();
  }
}

afterEach(stillServing, 30000);

function loginPacket(o: { plugin?: string; authResponse?: Buffer } = {}): Buffer {
  return encodeHandshakeResponse41({
    capabilities: (GATEWAY_CAPABILITIES & ~CLIENT_SSL) >>> 0,
    maxPacketSize: MAX_PACKET_PAYLOAD,
    characterSet: UTF8MB4_GENERAL_CI,
    username: 'reader',
    authResponse: o.authResponse ?? Buffer.alloc(0),
    database: 'app',
    authPluginName: o.plugin ?? 'mysql_native_password',
  });
}

/** A HandshakeResponse41 whose length-encoded auth response claims `lenenc` (the raw bytes). */
function loginWithAuthLength(lenenc: Buffer): Buffer {
  const head = Buffer.alloc(32);
  head.writeUInt32LE(((GATEWAY_CAPABILITIES & ~CLIENT_SSL) | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) >>> 0, 0);
  head.writeUInt32LE(MAX_PACKET_PAYLOAD, 4);
  head[8] = UTF8MB4_GENERAL_CI;
  return Buffer.concat([head, Buffer.from('reader\0'), lenenc, Buffer.from('abc')]);
}

/** Connects, reads the greeting, sends `input` (each element one write); expects an ERR with `code` and a close. */
async function expectErr(input: Buffer[], code: number, o: { within?: number; beforeGreeting?: boolean } = {}): Promise<{ message: string; ms: number; sequenceId: number; reason: string }> {
  const c = await RawConn.connect(h.port);
  if (!o.beforeGreeting) await c.bytes(4);
  for (const b of input) await c.write(b);
  const ms = await c.closedWithin(o.within ?? CUT_MS);
  const err = myError(c.received);
  expect(err).toMatchObject({ code });
  expect(err!.sqlState).toMatch(/^[0-9A-Z]{5}$/);
  const record = await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.remote === `127.0.0.1:${c.localPort}`);
  expect(record).toMatchObject({ reason: expect.stringMatching(/^[a-z_]+$/), message: expect.stringContaining(err!.message.slice(0, 40)) });
  const last = myPackets(c.received).pop()!;
  return { message: err!.message, ms, sequenceId: last.sequenceId, reason: String(record.reason) };
}

/** Greeting, HandshakeResponse41, the token on the AuthSwitch, OK. */
async function loggedIn(): Promise<RawConn> {
  const c = await RawConn.connect(h.port);
  await c.bytes(4);
  await c.write(encodePacket(1, loginPacket()));
  await waitFor(() => myPackets(c.received).length >= 2, { what: 'the AuthSwitchRequest' });
  await c.write(encodePacket(3, encodeClearPassword(await h.token())));
  await waitFor(() => myPackets(c.received).some((p) => p.sequenceId === 4 && p.payload[0] === 0x00), { what: 'the OK' });
  return c;
}

const threadsRunning = async (like: string): Promise<number> =>
  ((await h.admin(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND COMMAND = 'Query' AND ID <> CONNECTION_ID()`, [like])) as { n: number }[])[0].n;

describe('time: every connection is cut at session.authTimeout', () => {
  test('a connection that sends nothing after the greeting', async () => {
    const { message, ms } = await expectErr([], 1043);
    expect(message).toMatch(/did not receive a login and access token within 1s/);
    expect(ms).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS * 0.9);
  });

  test('a slow-loris that trickles its HandshakeResponse one byte at a time is cut all the same', async () => {
    const c = await RawConn.connect(h.port);
    await c.bytes(4);
    const packet = encodePacket(1, loginPacket());
    let i = 0;
    const trickle = setInterval(() => {
      if (i < packet.length && !c.socket.destroyed) c.socket.write(packet.subarray(i, ++i));
    }, 50);
    try {
      await c.closedWithin(CUT_MS);
      expect(i).toBeLessThan(packet.length);
      expect(myError(c.received)).toMatchObject({ code: 1043 });
    } finally {
      clearInterval(trickle);
    }
  });

  test('a truncated packet (header says 100 bytes, 50 sent) waits only until authTimeout', async () => {
    const { message } = await expectErr([Buffer.concat([Buffer.from([100, 0, 0, 1]), Buffer.alloc(50, 0x61)])], 1043);
    expect(message).toMatch(/within 1s/);
  });

  test('a TLS handshake that never finishes (SSLRequest, then half a ClientHello)', async () => {
    const c = await RawConn.connect(h.port);
    await c.bytes(4);
    await c.write(encodePacket(1, encodeSslRequest({ capabilities: GATEWAY_CAPABILITIES, maxPacketSize: MAX_PACKET_PAYLOAD, characterSet: UTF8MB4_GENERAL_CI })));
    await c.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]));
    const ms = await c.closedWithin(CUT_MS);
    expect(ms).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS * 0.9);
    await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'auth_timeout' && e.tls === true);
  });
});

describe('length fields', () => {
  test.each([
    ['0 (an empty login packet)', Buffer.from([0, 0, 0, 1])],
    ['just above the login cap', Buffer.concat([Buffer.from([0, 0, 0, 1])]).fill(0, 0, 0)],
    ['2^24-1 (a 16 MiB packet during login)', Buffer.from([0xff, 0xff, 0xff, 1])],
  ])('packet length %s: 1043 at once', async (name, header) => {
    if (name.startsWith('just above')) header.writeUIntLE(MAX_CLEAR_PASSWORD_BYTES + 80 * 1024 + 1, 0, 3);
    const { reason } = await expectErr([header], 1043);
    expect(reason).not.toBe('auth_timeout');
  });

  test.each([
    ['0xfb (NULL, not a length)', Buffer.from([0xfb])],
    ['0xff (not a length)', Buffer.from([0xff])],
    ['2^31-1 in 8 bytes', Buffer.from([0xfe, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0])],
    ['2^64-1 (negative as a signed int)', Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
    ['past the packet end (3 bytes claiming 65535)', Buffer.from([0xfc, 0xff, 0xff])],
  ])('a length-encoded auth response of %s: 1043 at once', async (_name, lenenc) => {
    const { reason } = await expectErr([encodePacket(1, loginWithAuthLength(lenenc))], 1043);
    expect(reason).not.toBe('auth_timeout');
  });
});

describe('malformed bytes and sequence ids', () => {
  test('random bytes before the greeting is read', async () => {
    await expectErr([crypto.randomBytes(64)], 1043, { beforeGreeting: true });
  });

  test.each([
    ['random bytes after the greeting', [crypto.randomBytes(64)]],
    ['a HandshakeResponse cut short inside its fixed part', [encodePacket(1, Buffer.alloc(20, 0x41))]],
    ['the login at sequence id 0 (a replay of the greeting id)', [encodePacket(0, loginPacket())]],
    ['the login at sequence id 2', [encodePacket(2, loginPacket())]],
    ['the login at sequence id 255', [encodePacket(255, loginPacket())]],
    ['the token at the wrong sequence id after the AuthSwitch', [encodePacket(1, loginPacket()), encodePacket(9, encodeClearPassword('x'))]],
  ])('%s: 1043', async (_name, input) => {
    await expectErr(input as Buffer[], 1043);
  });

  test('a command that does not start at sequence id 0 ends the session with an ERR', async () => {
    const c = await loggedIn();
    const at = c.received.length;
    await c.write(encodePacket(3, encodeQuery('SELECT 1')));
    await c.closedWithin(CUT_MS);
    expect(myError(c.received.subarray(at))).toMatchObject({ code: 1047, message: expect.stringMatching(/sequence id 0, got 3/) });
  });

  test('a 16 MiB continuation with the wrong sequence id ends the session with an ERR', async () => {
    const c = await loggedIn();
    const at = c.received.length;
    const first = Buffer.alloc(MAX_PACKET_PAYLOAD, 0x20);
    first.write("\x03SELECT '", 0, 'latin1');
    await c.write(encodePacket(0, first));
    await c.write(encodePacket(7, Buffer.from("'")));
    await c.closedWithin(CUT_MS + 10000);
    expect(myError(c.received.subarray(at))).toMatchObject({ code: 1047, sqlState: '08S01' });
  }, 60000);

  test('a query split across the 16 MiB boundary works or is refused cleanly by the server (max_allowed_packet)', async () => {
    const c = await connectMysql2(h, await h.token(), { database: 'app' });
    const [[{ max }]] = (await c.query('SELECT @@max_allowed_packet AS max')) as unknown as [[{ max: number }]];
    const sql = `SELECT LENGTH('${'y'.repeat(MAX_PACKET_PAYLOAD + 100)}') AS n`;
    const outcome = await c.query(sql).then(([rows]) => ({ n: (rows as { n: number }[])[0].n }), (e: { errno?: number; sqlState?: string }) => ({ errno: e.errno, sqlState: e.sqlState }));
    if (max > sql.length + 1) expect(outcome).toEqual({ n: MAX_PACKET_PAYLOAD + 100 });
    else expect(outcome).toMatchObject({ errno: 1153, sqlState: '08S01' }); // ER_NET_PACKET_TOO_LARGE, from the server
    await c.end().catch(() => undefined);
  }, 60000);
});

describe('a client that goes away or stops reading', () => {
  test('a client that sends a query and vanishes: the statement is killed upstream, the connection is not reused dirty', async () => {
    const c = await loggedIn();
    const at = c.received.length;
    await c.write(encodePacket(0, encodeQuery("SET @tg_hostile_mark = 'dirty'")));
    await waitFor(() => myPackets(c.received.subarray(at)).length >= 1, { what: 'SET' });
    await c.write(encodePacket(0, encodeQuery('CREATE TEMPORARY TABLE tg_hostile_tmp (x INT)')));
    await waitFor(() => myPackets(c.received.subarray(at)).length >= 2, { what: 'CREATE' });
    await c.write(encodePacket(0, encodeQuery('START TRANSACTION')));
    await waitFor(() => myPackets(c.received.subarray(at)).length >= 3, { what: 'START TRANSACTION' });
    await c.write(encodePacket(0, encodeQuery('SELECT SLEEP(60) AS tg_hostile_sleep')));
    await waitFor(async () => (await threadsRunning('SELECT SLEEP(60) AS tg_hostile_sleep')) === 1, { what: 'the sleep upstream' });
    c.destroy();
    await waitFor(async () => (await threadsRunning('SELECT SLEEP(60) AS tg_hostile_sleep')) === 0, { what: 'the statement to be killed', timeoutMs: 10000 });
    for (let i = 0; i < 4; i++) {
      const n = await connectMysql2(h, await h.token(), { database: 'app' });
      const [rows] = await n.query('SELECT @tg_hostile_mark AS mark, @@in_transaction AS tx');
      expect((rows as object[])[0]).toEqual({ mark: null, tx: 0 });
      // The temporary table is gone: creating it again succeeds (1050 if it were still there).
      await n.query('CREATE TEMPORARY TABLE tg_hostile_tmp (x INT)');
      await n.end();
    }
  }, 60000);

  test('a client that never reads a large result: backpressure reaches the server, the gateway holds no more than socket buffers', async () => {
    const c = await loggedIn();
    c.socket.pause();
    const before = process.memoryUsage();
    // About 2 GB of rows if it were all read (MariaDB's sequence engine).
    await c.write(encodePacket(0, encodeQuery("SELECT REPEAT('x', 1000) AS tg_hostile_big FROM seq_1_to_2000000")));
    const session = () => h.gateway.sessions.select({ protocol: 'mysql' }).map((s) => s.info()).find((i) => i.state === 'active');
    await waitFor(() => (session()?.bytesToClient ?? 0) > 0, { what: 'the first rows', timeoutMs: 20000 });
    let last = -1;
    let same = 0;
    // The relay stalls: bytesToClient stops growing while the statement is still running upstream.
    await waitFor(() => {
      const now = session()?.bytesToClient ?? 0;
      same = now === last ? same + 1 : 0;
      last = now;
      return same >= 25;
    }, { what: 'the relay to stall', timeoutMs: 20000, intervalMs: 40 });
    expect(await threadsRunning('%tg_hostile_big%')).toBe(1);
    const after = process.memoryUsage();
    const grownMb = (after.rss - before.rss) / 2 ** 20;
    console.log(`mysql unread result: relayed ${(last / 2 ** 20).toFixed(1)} MiB of ~1900 MiB before stalling; rss +${grownMb.toFixed(1)} MiB, heap +${((after.heapUsed - before.heapUsed) / 2 ** 20).toFixed(1)} MiB`);
    expect(last).toBeLessThan(64 * 2 ** 20);
    expect(grownMb).toBeLessThan(128);
    c.destroy();
    await waitFor(async () => (await threadsRunning('%tg_hostile_big%')) === 0, { what: 'the statement to be killed', timeoutMs: 15000 });
  }, 60000);
});

test('a client that pipelines 40 MB of queries and reads nothing: the gateway stops reading from it too', async () => {
  const c = await loggedIn();
  c.socket.pause();
  const one = encodePacket(0, encodeQuery(`SELECT CONCAT(REPEAT('x', 100000), '${'y'.repeat(50_000)}') AS tg_hostile_pipe`));
  const offered = 800 * one.length;
  for (let i = 0; i < 800; i++) c.socket.write(one);
  const session = () => h.gateway.sessions.select({ protocol: 'mysql' }).map((s) => s.info()).find((i) => i.state === 'active');
  let last = -1;
  let same = 0;
  await waitFor(() => {
    const now = session()?.bytesFromClient ?? 0;
    same = now === last && now > 0 ? same + 1 : 0;
    last = now;
    return same >= 10;
  }, { what: 'the gateway to stop reading the client', timeoutMs: 30000, intervalMs: 40 });
  console.log(`mysql pipelined: the gateway read ${(last / 2 ** 20).toFixed(1)} MiB of the ${(offered / 2 ** 20).toFixed(1)} MiB offered; ${(c.socket.writableLength / 2 ** 20).toFixed(1)} MiB wait in the client`);
  expect(last).toBeLessThan(16 * 2 ** 20);
  expect(c.socket.writableLength).toBeGreaterThan(offered / 2);
  c.destroy();
  await waitFor(async () => (await threadsRunning('%tg_hostile_pipe%')) === 0, { what: 'the statements to stop', timeoutMs: 15000 });
}, 60000);

describe('a hostile upstream', () => {
  test.each([
    ['a column count of 2^63', encodePacket(1, Buffer.from([0xfe, 0, 0, 0, 0, 0, 0, 0, 0x80]))],
    ['an OK followed by a packet nobody asked for', Buffer.concat([encodePacket(1, Buffer.from([0, 0, 0, 2, 0, 0, 0])), encodePacket(2, Buffer.alloc(100, 0x41))])],
    ['a malformed column count (0xfb)', encodePacket(1, Buffer.from([0xfb, 0x01]))],
    ['an ERR packet cut inside its header', encodePacket(1, Buffer.from([0xff, 0x01]))],
  ])('%s: the session ends with an ERR, the upstream connection is closed', async (_name, hostile) => {
    const fake = await fakeMysql(hostile);
    const g = await gatewayOn('mysql', fake, h.issuer.issuer, AUDIENCE);
    try {
      const c = await mysql.createConnection({ host: '127.0.0.1', port: g.port, user: 'reader', database: 'app', password: await h.token(), enableCleartextPlugin: true });
      c.on('error', () => undefined);
      // The ERR follows the last packet the client received: no "packets out of order".
      const outOfOrder: Error[] = [];
      (c as unknown as { connection: NodeJS.EventEmitter }).connection.on('warn', (w: Error) => outOfOrder.push(w));
      const err = await c.query(`SELECT ${TRIGGER}`).then(() => undefined, (e: { errno?: number; sqlState?: string; message: string }) => e);
      expect(err).toMatchObject({ errno: 1158, sqlState: '08S01', message: expect.stringMatching(/upstream/) });
      expect(outOfOrder.map((w) => w.message)).toEqual([]);
      await g.audit.waitFor((e) => e.event === 'session_end' && /^upstream/.test(String(e.reason)));
      await waitFor(() => fake.connections.every((x) => x.closed), { what: 'the upstream connection to be closed' });
      await c.end().catch(() => undefined);
      const again = await mysql.createConnection({ host: '127.0.0.1', port: g.port, user: 'reader', database: 'app', password: await h.token(), enableCleartextPlugin: true });
      await again.query('DO 1');
      await again.end();
    } finally {
      await g.gateway.close();
      await fake.close();
    }
  });
});
