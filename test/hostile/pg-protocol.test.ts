import crypto from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import { Client } from 'pg';
import { MAX_ACCESS_TOKEN_BYTES } from '../../src/identity/tokenSize';
import { startGatewayHarness, AUDIENCE, type PgHarness } from '../integration/harness';
import { makeTestCertificates } from '../helpers/tlsCert';
import { waitFor } from '../helpers/waitFor';
import { PgClientSession } from '../../src/postgres/clientSession';
import { fakePostgres, gatewayOn, TRIGGER } from './fakeUpstream';
import { CANCEL_REQUEST_CODE, PG_PROTOCOL_3, RawConn, SSL_REQUEST_CODE, int32s, pgError, pgMessages, pgPassword, pgQuery, pgStartup, pgTyped } from './wire';

/**
 * Hostile input on the PostgreSQL listener, over raw sockets against a real gateway and a real
 * PostgreSQL: every case ends within its timeout with a PostgreSQL ErrorResponse (or the silent
 * close PostgreSQL itself uses), and the gateway goes on serving. docs/security.md lists them.
 */
let h: PgHarness;
const certs = makeTestCertificates();
const AUTH_TIMEOUT_MS = 1000;
/** The gateway's cut at authTimeout, plus the shared machine's slack. */
const CUT_MS = AUTH_TIMEOUT_MS + 9000;

beforeAll(async () => {
  h = await startGatewayHarness({
    protocol: 'postgres',
    authTimeout: `${AUTH_TIMEOUT_MS / 1000}s`,
    pool: '{ maxConnections: 4, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 5s }',
    tls: { certFile: certs.certFile, keyFile: certs.keyFile },
  });
}, 120000);

afterAll(async () => {
  await h?.stop();
  certs.cleanup();
});

/** The gateway still serves: a real client logs in and queries. */
async function stillServing(): Promise<void> {
  const c = new Client({ host: '127.0.0.1', port: h.port, user: 'reader', database: 'app', password: await h.token() });
  await c.connect();
  try {
    expect((await c.query('SELECT count(*)::int AS n FROM items')).rows[0].n).toBe(10);
  } finally {
    await c.end();
  }
}

afterEach(stillServing, 30000);

/** Sends `input` (each element one write), then expects a FATAL ErrorResponse with `code` and a close. */
async function expectRefused(input: Buffer[], code: string, within = CUT_MS): Promise<{ message: string; ms: number; reason: string }> {
  const c = await RawConn.connect(h.port);
  for (const b of input) await c.write(b);
  const ms = await c.closedWithin(within);
  const err = pgError(c.received);
  expect(err).toMatchObject({ code, severity: 'FATAL' });
  // Audited with its reason and the message the client got.
  const record = await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.remote === `127.0.0.1:${c.localPort}`);
  expect(record).toMatchObject({ reason: expect.stringMatching(/^[a-z_]+$/), message: expect.stringContaining(err!.message!.slice(0, 40)) });
  return { message: err!.message!, ms, reason: String(record.reason) };
}

/** Startup and password: what a client sends before its first query. */
async function loggedIn(): Promise<RawConn> {
  const c = await RawConn.connect(h.port);
  await c.write(pgStartup({ user: 'reader', database: 'app' }));
  await c.bytes(9);
  await c.write(pgPassword(await h.token()));
  await waitFor(() => pgMessages(c.received).some((m) => m.type === 'Z'), { what: 'ReadyForQuery' });
  return c;
}

describe('time: every connection is cut at session.authTimeout', () => {
  test('a connection that sends nothing', async () => {
    const { message, ms } = await expectRefused([], '08P01');
    expect(message).toMatch(/did not receive a startup message/);
    expect(ms).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS * 0.9);
  });

  test('a slow-loris that trickles a startup packet one byte at a time is cut all the same', async () => {
    const c = await RawConn.connect(h.port);
    const packet = pgStartup({ user: 'reader', database: 'app', application_name: 'x'.repeat(200) });
    let i = 0;
    const trickle = setInterval(() => {
      if (i < packet.length && !c.socket.destroyed) c.socket.write(packet.subarray(i, ++i));
    }, 50);
    try {
      const ms = await c.closedWithin(CUT_MS);
      expect(i).toBeLessThan(packet.length); // still trickling when it was cut
      expect(ms).toBeLessThan(CUT_MS);
      expect(pgError(c.received)).toMatchObject({ code: '08P01' });
    } finally {
      clearInterval(trickle);
    }
  });

  test('a slow-loris after the startup packet (the token one byte at a time) is cut all the same', async () => {
    const c = await RawConn.connect(h.port);
    await c.write(pgStartup({ user: 'reader', database: 'app' }));
    await c.bytes(9);
    const at = c.received.length;
    const packet = pgPassword(await h.token());
    let i = 0;
    const trickle = setInterval(() => {
      if (i < packet.length && !c.socket.destroyed) c.socket.write(packet.subarray(i, ++i));
    }, 50);
    try {
      await c.closedWithin(CUT_MS);
      expect(i).toBeLessThan(packet.length);
      expect(pgError(c.received, at)).toMatchObject({ code: '08P01' });
    } finally {
      clearInterval(trickle);
    }
  });

  test('a truncated startup packet (length says 100, 50 bytes sent) waits only until authTimeout', async () => {
    const { message } = await expectRefused([Buffer.concat([int32s(100, PG_PROTOCOL_3), Buffer.alloc(42, 0x61)])], '08P01');
    expect(message).toMatch(/within 1s/);
  });

  test('a TLS handshake that never finishes (SSLRequest, then half a ClientHello)', async () => {
    const c = await RawConn.connect(h.port);
    await c.write(int32s(8, SSL_REQUEST_CODE));
    expect((await c.bytes(1)).toString()).toBe('S');
    await c.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])); // a record header promising 512 bytes
    const ms = await c.closedWithin(CUT_MS);
    expect(ms).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS * 0.9);
    await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'auth_timeout' && e.tls === true);
  });

  test('a TLS session that completes its handshake but sends nothing', async () => {
    const raw = await RawConn.connect(h.port);
    await raw.write(int32s(8, SSL_REQUEST_CODE));
    await raw.bytes(1);
    raw.socket.removeAllListeners('data');
    const secure = tls.connect({ socket: raw.socket, ca: fs.readFileSync(certs.caFile), servername: 'localhost' });
    const got: Buffer[] = [];
    secure.on('data', (d: Buffer) => got.push(d));
    secure.on('error', () => undefined);
    await new Promise<void>((r) => secure.once('secureConnect', () => r()));
    await raw.closedWithin(CUT_MS);
    expect(pgError(Buffer.concat(got))).toMatchObject({ code: '08P01', message: expect.stringMatching(/within 1s/) });
  });
});

describe('length fields', () => {
  // Startup-phase packets: int32 length (including itself), no type byte. MIN is 8, the cap 10000.
  test.each([
    ['0', 0],
    ['negative (0xffffffff)', 0xffffffff],
    ['below the minimum (4)', 4],
    ['just above the cap (10001)', 10001],
    ['2^31-1', 0x7fffffff],
  ])('startup packet length %s: 08P01 at once', async (_name, length) => {
    const { reason } = await expectRefused([Buffer.concat([int32s(length, PG_PROTOCOL_3)])], '08P01');
    expect(reason).toBe('protocol_violation'); // refused on the header, not by the timeout
  });

  // Typed messages after the startup: type byte, int32 length. A password message longer than any
  // access token (MAX_ACCESS_TOKEN_BYTES) is refused as one (28P01, token_too_large); lengths no
  // message can have are protocol violations.
  test('password message length just above the token cap: 28P01 token_too_large at once', async () => {
    const { reason } = await expectRefused([pgStartup({ user: 'reader', database: 'app' }), Buffer.concat([Buffer.from('p'), int32s(MAX_ACCESS_TOKEN_BYTES + 6)])], '28P01');
    expect(reason).toBe('token_too_large');
  });

  test.each([
    ['0', 0],
    ['negative (0x80000000)', 0x80000000],
    ['3 (shorter than the length field)', 3],
    ['2^31-1', 0x7fffffff],
  ])('password message length %s: 08P01 at once', async (_name, length) => {
    const { reason } = await expectRefused([pgStartup({ user: 'reader', database: 'app' }), Buffer.concat([Buffer.from('p'), int32s(length)])], '08P01');
    expect(reason).toBe('protocol_violation');
  });
});

describe('malformed and unexpected bytes', () => {
  test.each([
    ['a startup packet whose parameters lack their terminators', [Buffer.concat([int32s(16, PG_PROTOCOL_3), Buffer.from('userxxxx')])], '08P01'],
    ['random bytes before any startup packet', [crypto.randomBytes(64).fill(0x00, 0, 1)], '08P01'],
    ['random bytes instead of the password message', [pgStartup({ user: 'reader' }), Buffer.concat([Buffer.from('Z'), crypto.randomBytes(40)])], '08P01'],
    ['a query before authentication', [pgStartup({ user: 'reader' }), pgQuery('SELECT 1')], '08P01'],
    ['a password message without its NUL', [pgStartup({ user: 'reader' }), pgTyped('p', 'abc')], '08P01'],
    // The second packet is read as a typed message with a big length: it never completes, so authTimeout cuts it.
    ['a second startup packet in the same write', [Buffer.concat([pgStartup({ user: 'reader' }), pgStartup({ user: 'writer' })])], '08P01'],
    ['an SSLRequest with plaintext behind it in the same write (CVE-2021-23214)', [Buffer.concat([int32s(8, SSL_REQUEST_CODE), pgStartup({ user: 'reader' })])], '08P01'],
    ['an unsupported protocol version', [Buffer.concat([int32s(8, 0x00020000)])], '0A000'],
  ])('%s', async (_name, input, code) => {
    await expectRefused(input as Buffer[], code as string);
  });

  test('random bytes after the login (inside the relay) end the session with 08P01', async () => {
    const c = await loggedIn();
    const at = c.received.length;
    await c.write(Buffer.concat([Buffer.from('Q'), int32s(0x7fffffff), crypto.randomBytes(32)]));
    await c.closedWithin(CUT_MS);
    expect(pgError(c.received, at)).toMatchObject({ code: '08P01' });
  });

  test('bytes that arrive after the SSLRequest but before the TLS layer takes over belong to TLS', async () => {
    // Widen the window between writing 'S' and wrapping the socket, as a loaded machine might.
    const proto = PgClientSession.prototype as unknown as { upgradeToTls(): void };
    const original = proto.upgradeToTls;
    const spy = jest.spyOn(proto, 'upgradeToTls').mockImplementation(function (this: unknown) {
      setTimeout(() => original.call(this), 100);
    });
    try {
      // Plaintext behind it: handed to TLS, which rejects it; the token is never asked for in the clear.
      const c = await RawConn.connect(h.port);
      await c.write(int32s(8, SSL_REQUEST_CODE));
      await c.bytes(1);
      await c.write(pgStartup({ user: 'reader', database: 'app' }));
      await c.closedWithin(CUT_MS);
      expect(c.received.toString()).toBe('S');
      // A real client's ClientHello in that window: the handshake completes (it used to be taken for direct TLS).
      const tlsClient = new Client({ host: '127.0.0.1', port: h.port, user: 'reader', database: 'app', password: await h.token(), ssl: { ca: fs.readFileSync(certs.caFile), servername: 'localhost' } });
      await tlsClient.connect();
      expect((await tlsClient.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      await tlsClient.end();
      expect(spy).toHaveBeenCalledTimes(2);
    } finally {
      spy.mockRestore();
    }
  });

  test('plaintext sent in a separate write right after an SSLRequest is never read as plaintext', async () => {
    const c = await RawConn.connect(h.port);
    c.socket.write(int32s(8, SSL_REQUEST_CODE));
    c.socket.write(pgStartup({ user: 'reader', database: 'app' }));
    await c.closedWithin(CUT_MS);
    const reply = c.received;
    // Either refused on the spot (both writes in one read) or 'S' and a TLS layer that rejects the bytes:
    // never an AuthenticationCleartextPassword asking for the token in the clear.
    if (reply[0] === 'S'.charCodeAt(0)) expect(reply.length).toBe(1);
    else expect(pgError(reply)).toMatchObject({ code: '08P01' });
  });
});

describe('CancelRequest', () => {
  async function cancelReply(processId: number, key: Buffer): Promise<{ bytes: number; ms: number }> {
    const c = await RawConn.connect(h.port);
    await c.write(Buffer.concat([int32s(16, CANCEL_REQUEST_CODE, processId), key]));
    const ms = await c.closedWithin(CUT_MS);
    return { bytes: c.received.length, ms };
  }

  test('a random key has no effect and gets the same silent close as a valid one', async () => {
    const c = await loggedIn();
    const key = pgMessages(c.received).find((m) => m.type === 'K')!.body;
    const [pid, secret] = [key.readUInt32BE(0), key.subarray(4, 8)];
    const at = c.received.length;
    await c.write(pgQuery('SELECT pg_sleep(1.5), 42 AS answer'));
    await waitFor(async () => (await h.cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(1.5)%'", 'app')) === '1', { what: 'the sleep upstream' });
    const random = await cancelReply(crypto.randomInt(2 ** 31), crypto.randomBytes(4));
    const wrongSecret = await cancelReply(pid, crypto.randomBytes(4));
    expect(random.bytes).toBe(0);
    expect(wrongSecret.bytes).toBe(0);
    // The statement was not cancelled: it completes with its result.
    await waitFor(() => pgMessages(c.received, at).some((m) => m.type === 'Z'), { what: 'the statement to finish', timeoutMs: 10000 });
    expect(pgMessages(c.received, at).map((m) => m.type)).toEqual(['T', 'D', 'C', 'Z']);
    // The valid key: the same answer (none), and this time the statement is cancelled.
    const at2 = c.received.length;
    await c.write(pgQuery('SELECT pg_sleep(30)'));
    await waitFor(async () => (await h.cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'", 'app')) === '1', { what: 'the sleep upstream' });
    const valid = await cancelReply(pid, secret);
    expect(valid.bytes).toBe(0);
    await waitFor(() => pgMessages(c.received, at2).some((m) => m.type === 'Z'), { what: 'the cancel', timeoutMs: 10000 });
    expect(pgError(c.received, at2)).toMatchObject({ code: '57014' });
    c.destroy();
  });
});

describe('a client that goes away or stops reading', () => {
  test('a client that sends a query and vanishes: the statement is cancelled upstream, the connection is not reused dirty', async () => {
    const c = await loggedIn();
    await c.write(pgQuery("SET tg_hostile.mark = 'dirty'"));
    await waitFor(() => pgMessages(c.received).filter((m) => m.type === 'Z').length >= 2, { what: 'SET' });
    await c.write(pgQuery('BEGIN; CREATE TEMP TABLE tg_hostile_tmp (x int); SELECT pg_sleep(60)'));
    await waitFor(async () => (await h.cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'BEGIN; CREATE TEMP TABLE tg_hostile_tmp%' AND state = 'active'", 'app')) === '1', { what: 'the sleep upstream' });
    c.destroy();
    await waitFor(async () => (await h.cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'BEGIN; CREATE TEMP TABLE tg_hostile_tmp%' AND state = 'active'", 'app')) === '0', { what: 'the statement to be cancelled', timeoutMs: 10000 });
    // Every later session on the pool starts clean: no setting, no temp table, no open transaction.
    for (let i = 0; i < 4; i++) {
      const n = new Client({ host: '127.0.0.1', port: h.port, user: 'reader', database: 'app', password: await h.token() });
      await n.connect();
      const r = await n.query("SELECT current_setting('tg_hostile.mark', true) AS mark, to_regclass('pg_temp.tg_hostile_tmp') AS tmp, now() = statement_timestamp() AS fresh_tx");
      expect(r.rows[0]).toEqual({ mark: null, tmp: null, fresh_tx: true });
      await n.end();
    }
  }, 60000);

  test('a client that never reads a large result: backpressure reaches the server, the gateway holds no more than socket buffers', async () => {
    const c = await loggedIn();
    c.socket.pause();
    global.gc?.();
    const before = process.memoryUsage();
    // About 2 GB of rows if it were all read.
    await c.write(pgQuery("SELECT repeat('x', 1000) FROM generate_series(1, 2000000)"));
    const session = () => h.gateway.sessions.select({ protocol: 'postgres' }).map((s) => s.info()).find((i) => i.state === 'active');
    // The relay stalls (bytesToClient stops growing) and the backend blocks writing to its socket:
    // the gateway stopped reading from it.
    let stalled = -1;
    let same = 0;
    await waitFor(async () => {
      const now = session()?.bytesToClient ?? 0;
      same = now === stalled && now > 0 ? same + 1 : 0;
      stalled = now;
      return same >= 10 && (await h.cluster.psql("SELECT wait_event FROM pg_stat_activity WHERE query LIKE 'SELECT repeat(%'", 'app')) === 'ClientWrite';
    }, { what: 'the relay to stall with the backend blocked on ClientWrite', timeoutMs: 30000, intervalMs: 40 });
    const after = process.memoryUsage();
    const grownMb = (after.rss - before.rss) / 2 ** 20;
    console.log(`pg unread result: relayed ${(stalled / 2 ** 20).toFixed(1)} MiB of ~1900 MiB before stalling; rss +${grownMb.toFixed(1)} MiB, heap +${((after.heapUsed - before.heapUsed) / 2 ** 20).toFixed(1)} MiB`);
    expect(stalled).toBeLessThan(64 * 2 ** 20);
    expect(grownMb).toBeLessThan(128);
    c.destroy();
    await waitFor(async () => (await h.cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT repeat(%' AND state = 'active'", 'app')) === '0', { what: 'the statement to be cancelled', timeoutMs: 15000 });
  }, 60000);
});

test('a client that pipelines 40 MB of queries and reads nothing: the gateway stops reading from it too', async () => {
  const c = await loggedIn();
  c.socket.pause();
  // Each query sends 50 KB and asks for 100 KB: the server blocks writing, stops reading, and so must the gateway.
  const one = pgQuery(`SELECT repeat('x', 100000) || '${'y'.repeat(50_000)}'`);
  const offered = 800 * one.length;
  for (let i = 0; i < 800; i++) c.socket.write(one);
  const session = () => h.gateway.sessions.select({ protocol: 'postgres' }).map((s) => s.info()).find((i) => i.state === 'active');
  let last = -1;
  let same = 0;
  await waitFor(() => {
    const now = session()?.bytesFromClient ?? 0;
    same = now === last && now > 0 ? same + 1 : 0;
    last = now;
    return same >= 10;
  }, { what: 'the gateway to stop reading the client', timeoutMs: 30000, intervalMs: 40 });
  console.log(`pg pipelined: the gateway read ${(last / 2 ** 20).toFixed(1)} MiB of the ${(offered / 2 ** 20).toFixed(1)} MiB offered; ${(c.socket.writableLength / 2 ** 20).toFixed(1)} MiB wait in the client`);
  expect(last).toBeLessThan(16 * 2 ** 20);
  expect(c.socket.writableLength).toBeGreaterThan(offered / 2);
  c.destroy();
  await waitFor(async () => (await h.cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT repeat(''x'', 100000)%' AND state = 'active'", 'app')) === '0', { what: 'the statements to stop', timeoutMs: 15000 });
}, 60000);

describe('a hostile upstream', () => {
  test.each([
    ['a DataRow claiming 2^31-1 bytes', Buffer.concat([Buffer.from('D'), int32s(0x7fffffff), Buffer.alloc(16)])],
    ['a message with length 2 (shorter than its length field)', Buffer.concat([Buffer.from('C'), int32s(2), Buffer.alloc(8)])],
  ])('%s: the session ends with a FATAL 08P01, the upstream connection is closed', async (_name, hostile) => {
    const fake = await fakePostgres(hostile);
    const g = await gatewayOn('postgres', fake, h.issuer.issuer, AUDIENCE);
    try {
      const c = new Client({ host: '127.0.0.1', port: g.port, user: 'reader', database: 'app', password: await h.token() });
      const errors: Error[] = [];
      c.on('error', (e) => errors.push(e));
      await c.connect();
      const err = await c.query(`SELECT ${TRIGGER}`).then(() => undefined, (e: Error & { code?: string }) => e);
      expect(err).toMatchObject({ code: '08P01', severity: 'FATAL', message: expect.stringMatching(/invalid message from the upstream/) });
      await g.audit.waitFor((e) => e.event === 'session_end' && e.reason === 'upstream_protocol_error');
      await waitFor(() => fake.connections.every((x) => x.closed), { what: 'the upstream connection to be closed' });
      await c.end().catch(() => undefined);
      // The gateway still serves on a fresh upstream connection.
      const again = new Client({ host: '127.0.0.1', port: g.port, user: 'reader', database: 'app', password: await h.token() });
      await again.connect();
      await again.query('SELECT 1');
      await again.end();
    } finally {
      await g.gateway.close();
      await fake.close();
    }
  });
});
