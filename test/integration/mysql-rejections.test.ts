import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import { createPublicKey } from 'node:crypto';
import { SignJWT } from 'jose';
import type mysql from 'mysql2/promise';
import {
  CLIENT_CONNECT_ATTRS,
  CLIENT_PLUGIN_AUTH,
  CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
  CLIENT_SSL,
  GATEWAY_CAPABILITIES,
  MAX_PACKET_PAYLOAD,
  PacketFramer,
  UTF8MB4_GENERAL_CI,
  decodeAuthSwitchRequest,
  decodeErr,
  decodeHandshakeV10,
  encodeClearPassword,
  encodeHandshakeResponse41,
  encodePacket,
  encodeQuery,
  encodeSslRequest,
  type Packet,
} from '../../protocols/mysql';
import { startGatewayHarness, type MysqlHarness, type RunningGateway } from './harness';
import { connectMysql2, mariadbCli, upstreamThreads } from './clients';
import { waitFor } from '../helpers/waitFor';
import { makeTestCertificates } from '../helpers/tlsCert';
import { PrefixedStream } from '../../src/net/prefixedStream';

/**
 * Every way a MySQL connection is refused reaches the client as an ERR packet with a fitting
 * code and SQLSTATE and a message that says what to do, and is audited with its reason.
 */
let h: MysqlHarness;
const certs = makeTestCertificates();
/** A second gateway with a short session.authTimeout, so the timeout test waits one second, not five. */
const AUTH_TIMEOUT_MS = 1000;
let quick: RunningGateway;

beforeAll(async () => {
  h = await startGatewayHarness({
    protocol: 'mysql',
    pool: '{ maxConnections: 2, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 1s }',
    tls: { certFile: certs.certFile, keyFile: certs.keyFile },
  });
  quick = await h.startGateway({ authTimeout: `${AUTH_TIMEOUT_MS / 1000}s` });
}, 60000);

afterAll(async () => {
  await h?.stop();
  certs.cleanup();
});

type Row = mysql.RowDataPacket;
interface MysqlError { errno?: number; sqlState?: string; code?: unknown; message: string }

async function connectError(password: string, o: Partial<mysql.ConnectionOptions> = {}): Promise<MysqlError> {
  return connectMysql2(h, password, o).then(
    async (c) => {
      await c.end();
      throw new Error('connection unexpectedly succeeded');
    },
    (err: MysqlError) => err,
  );
}

const b64url = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
const claimsOf = (token: string): Record<string, unknown> => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
const now = (): number => Math.floor(Date.now() / 1000);

describe('token rejection classes -> 1045 (28000)', () => {
  const cases: [string, () => Promise<string>, string, RegExp][] = [
    ['expired', () => h.token('svc-reporting', { expiresInSec: -120, issuedAtSec: now() - 600 }), 'expired', /expired/i],
    ['not yet valid', () => h.token('svc-reporting', { notBeforeSec: now() + 600 }), 'not_yet_valid', /not (yet )?valid/i],
    ['wrong issuer', () => h.token('svc-reporting', { claims: { iss: 'https://evil.example.com/oauth2/default' } }), 'bad_issuer', /accepts tokens only from/],
    ['wrong audience', () => h.token('svc-reporting', { claims: { aud: 'api://other' } }), 'bad_audience', /audience/i],
    ['lifetime too long', () => h.token('svc-reporting', { expiresInSec: 5 * 3600 }), 'lifetime_too_long', /lifetime|longer/i],
    ['missing scope', () => h.token('svc-reporting', { claims: { scp: ['profile'] } }), 'missing_scope', /db\.connect/],
    ['unknown kid', () => h.token('svc-reporting', { kid: 'no-such-key' }), 'unknown_key', /key/i],
    ['alg none', async () => `${b64url({ alg: 'none' })}.${b64url(claimsOf(await h.token()))}.`, 'algorithm_not_allowed', /only signed tokens are accepted/],
    ['HS256 signed with the IdP public key', async () => {
      const jwk = h.issuer.publicJwks().keys[0] as { kid?: string };
      const pem = createPublicKey({ key: jwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      return new SignJWT(claimsOf(await h.token())).setProtectedHeader({ alg: 'HS256', kid: jwk.kid }).sign(Buffer.from(pem));
    }, 'algorithm_not_allowed', /algorithm/i],
    ['tampered payload', async () => {
      const [head, , sig] = (await h.token()).split('.');
      return `${head}.${b64url({ ...claimsOf(await h.token()), groups: ['db-admins'] })}.${sig}`;
    }, 'bad_signature', /signature/i],
    ['not a JWT at all', async () => 'hunter2', 'malformed', /token/i],
  ];

  test.each(cases)('%s', async (_name, make, reason, text) => {
    const token = await make();
    const started = Date.now();
    const err = await connectError(token);
    expect(err).toMatchObject({ errno: 1045, sqlState: '28000' });
    expect(err.message).toMatch(text);
    expect(err.message).not.toContain(token);
    await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.protocol === 'mysql' && e.reason === reason && Number(new Date(String(e.timestamp))) >= started - 50);
  });

  test('the mariadb CLI shows the reason', async () => {
    const r = await mariadbCli(h, await h.token('svc-reporting', { expiresInSec: -120, issuedAtSec: now() - 600 }), 'SELECT 1');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ERROR 1045 \(28000\).*expired/);
  });

  test('an empty password says where the token goes', async () => {
    const client = await RawClient.connect(h.port);
    try {
      await client.next();
      client.send(1, loginPacket());
      await client.next();
      client.send(3, encodeClearPassword(''));
      const err = await client.next();
      expect(err.sequenceId).toBe(4);
      expect(decodeErr(err.payload)).toMatchObject({ code: 1045, sqlState: '28000', message: expect.stringMatching(/no access token.*MYSQL_PWD/) });
    } finally {
      client.close();
    }
  });
});

describe('grants', () => {
  test('role not granted lists the roles that are (1045)', async () => {
    const err = await connectError(await h.token(), { user: 'writer' });
    expect(err).toMatchObject({ errno: 1045, sqlState: '28000' });
    expect(err.message).toMatch(/role "writer" is not granted.*reader/);
    await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'role_not_granted' && e.role === 'writer');
  });

  test('database not granted (1044, 42000) names the granted ones', async () => {
    const err = await connectError(await h.token('0oa1svcbilling'), { user: 'writer', database: 'analytics' });
    expect(err).toMatchObject({ errno: 1044, sqlState: '42000' });
    expect(err.message).toMatch(/"analytics" is not granted.*app/);
  });

  test('unknown database (1049) lists the known ones', async () => {
    const err = await connectError(await h.token(), { database: 'payroll' });
    expect(err).toMatchObject({ errno: 1049, sqlState: '42000', message: expect.stringMatching(/payroll.*known databases: app, analytics/) });
  });

  test('a token no grant matches (1045)', async () => {
    const err = await connectError(await h.token('svc-nobody'));
    expect(err).toMatchObject({ errno: 1045, message: expect.stringMatching(/no grant/i) });
  });

  test('client-credentials token matched by client id and scope', async () => {
    const c = await connectMysql2(h, await h.token('0oa1svcbilling'), { user: 'writer' });
    const [r] = await c.query<Row[]>('SELECT CURRENT_USER() AS u');
    expect(r[0].u).toBe(`${h.names.rw}@%`);
    await c.end();
  });
});

describe('no database at login', () => {
  test('routed when the grants allow exactly one database for the role', async () => {
    const c = await connectMysql2(h, await h.token('0oa1svcbilling'), { user: 'writer', database: undefined });
    const [r] = await c.query<Row[]>('SELECT DATABASE() AS d');
    expect(r[0].d).toBe(h.names.app);
    await c.end();
  });

  test('several possible: the session starts without one; commands say how to pick, USE picks', async () => {
    const started = Date.now();
    const c = await connectMysql2(h, await h.token(), { database: undefined });
    try {
      await expect(c.query('SELECT 1')).rejects.toMatchObject({
        errno: 1046, sqlState: '3D000', message: expect.stringMatching(/No database selected: your grants allow databases: app, analytics; send USE/),
      });
      await c.ping(); // answered by the gateway while there is no upstream
      await c.query('USE analytics');
      const [r] = await c.query<Row[]>('SELECT DATABASE() AS d, value FROM metrics');
      expect(r[0]).toEqual({ d: h.names.analytics, value: 42 });
    } finally {
      await c.end();
    }
    const accepted = await h.audit.waitFor((e) => e.event === 'connection_accepted' && e.database === '' && Number(new Date(String(e.timestamp))) >= started - 50);
    await h.audit.waitFor((e) => e.event === 'session_end' && e.sessionId === accepted.sessionId && e.upstreamReused === true);
  });

  test('a role granted nowhere is refused at login', async () => {
    const err = await connectError(await h.token(), { user: 'writer', database: undefined });
    expect(err).toMatchObject({ errno: 1045, message: expect.stringMatching(/"writer" is not granted to you on any MySQL database; your grants allow: reader/) });
  });
});

test('pool exhausted -> 1040 (08004) after acquireTimeout', async () => {
  const token = await h.token();
  const held = [await connectMysql2(h, token, { database: 'analytics' }), await connectMysql2(h, token, { database: 'analytics' })];
  try {
    const err = await connectError(token, { database: 'analytics' });
    expect(err).toMatchObject({ errno: 1040, sqlState: '08004', message: expect.stringMatching(/All 2 upstream connections/) });
    await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'pool_exhausted');
  } finally {
    for (const c of held) await c.end();
  }
});

describe('token expiry', () => {
  test('an idle session ends with an ERR telling to reconnect with a fresh token; the upstream is reused', async () => {
    const c = await connectMysql2(h, await h.token('svc-reporting', { expiresInSec: 3 }));
    const errors: MysqlError[] = [];
    c.on('error', (e: MysqlError) => errors.push(e));
    const [r] = await c.query<Row[]>('SELECT 1 AS one');
    expect(r[0].one).toBe(1);
    await waitFor(() => errors.length > 0, { what: 'the ERR that ends the session when the token expires', timeoutMs: 10000 });
    expect(errors[0]).toMatchObject({ code: 1927, message: expect.stringMatching(/access token expired.*fresh token and reconnect/) });
    await h.audit.waitFor((e) => e.event === 'session_end' && e.reason === 'token_expired' && e.upstreamReused === true);
    c.destroy();
  });

  test('a running statement is interrupted, and its answer says why: 1927, the token expired', async () => {
    const c = await connectMysql2(h, await h.token('svc-reporting', { expiresInSec: 2 }), { database: 'analytics' });
    const errors: MysqlError[] = [];
    c.on('error', (e: MysqlError) => errors.push(e));
    const started = Date.now();
    const outcome = await c.query('SELECT SLEEP(20)').then(() => 'finished', (e: MysqlError) => e);
    expect(Date.now() - started).toBeLessThan(10000);
    expect(outcome).toMatchObject({ errno: 1927, sqlState: '70100', message: expect.stringMatching(/^your access token expired .*fetch a fresh token and reconnect$/) });
    await h.audit.waitFor((e) => e.event === 'session_end' && e.reason === 'token_expired');
    c.destroy();
  });

  test('the mariadb CLI shows the same: ERROR 1927 with the expiry message, not 1317', async () => {
    const started = Date.now();
    const r = await mariadbCli(h, await h.token('svc-reporting', { expiresInSec: 2 }), 'SELECT SLEEP(5) FROM seq_1_to_3', { db: 'analytics' });
    expect(Date.now() - started).toBeLessThan(10000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^ERROR 1927 \(70100\) at line 1: your access token expired .*fetch a fresh token and reconnect$/m);
    expect(r.stderr).not.toContain('1317');
  });
});

test('an upstream connection killed by a DBA ends the session with an error, and is not reused', async () => {
  const started = Date.now();
  const c = await connectMysql2(h, await h.token(), { database: 'analytics' });
  const errors: MysqlError[] = [];
  c.on('error', (e: MysqlError) => errors.push(e));
  const [rows] = await c.query<Row[]>('SELECT CONNECTION_ID() AS id');
  await h.admin(`KILL CONNECTION ${Number(rows[0].id)}`);
  await waitFor(() => errors.length > 0, { what: 'the session error after the DBA killed its upstream connection' });
  expect(errors[0]?.message).toMatch(/killed|closed the connection/i);
  await h.audit.waitFor((e) => e.event === 'session_end' && e.reason === 'upstream_closed' && e.upstreamReused === false && Number(new Date(String(e.timestamp))) >= started - 50);
  c.destroy();
});

describe('the raw wire', () => {
  test('greeting: the upstream version, a gateway connection id, TLS offered, clear password offered (loopback); a native answer gets an AuthSwitch to clear', async () => {
    const client = await RawClient.connect(h.port);
    try {
      const greeting = decodeHandshakeV10((await client.next()).payload);
      const [v] = (await h.admin('SELECT VERSION() AS v')) as { v: string }[];
      expect(greeting.serverVersion.endsWith(v.v)).toBe(true);
      expect(greeting.connectionId).toBeGreaterThanOrEqual(2 ** 30);
      expect(greeting.capabilities).toBe(GATEWAY_CAPABILITIES);
      // Plaintext is allowed from loopback here, so the token may come in the HandshakeResponse.
      expect(greeting.authPluginName).toBe('mysql_clear_password');
      expect(greeting.authPluginData).toHaveLength(20);
      client.send(1, loginPacket());
      const sw = await client.next();
      expect(sw.sequenceId).toBe(2);
      expect(decodeAuthSwitchRequest(sw.payload).pluginName).toBe('mysql_clear_password');
    } finally {
      client.close();
    }
  });

  test('a HandshakeResponse that takes the clear-password offer logs in without an AuthSwitch (OK at sequence 2)', async () => {
    const token = await h.token();
    const client = await RawClient.connect(h.port);
    try {
      await client.next();
      client.send(1, loginPacket('app', { plugin: 'mysql_clear_password', authResponse: encodeClearPassword(token) }));
      const ok = await client.next();
      expect([ok.sequenceId, ok.payload[0]]).toEqual([2, 0x00]);
      client.send(0, encodeQuery('SELECT DATABASE()'));
      expect(await client.textResult()).toBe(h.names.app);
      await h.audit.waitFor((e) => e.event === 'connection_accepted' && e.sub === 'svc-reporting' && e.database === 'app');
    } finally {
      client.close();
    }
    // A wrong token sent the same way is refused like any other.
    const bad = await RawClient.connect(h.port);
    try {
      await bad.next();
      bad.send(1, loginPacket('app', { plugin: 'mysql_clear_password', authResponse: encodeClearPassword('not-a-token') }));
      const err = await bad.next();
      expect(err.sequenceId).toBe(2);
      expect(decodeErr(err.payload)).toMatchObject({ code: 1045, sqlState: '28000' });
    } finally {
      bad.close();
    }
  });

  test('an SSLRequest and the TLS ClientHello in one TCP write: the bytes after the request start the TLS handshake', async () => {
    const replayed = jest.spyOn(PrefixedStream.prototype, '_read');
    const raw = net.connect(h.port, '127.0.0.1');
    raw.on('error', () => undefined);
    const framer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD });
    const greeting = await new Promise<Packet>((resolve) => raw.once('data', (d: Buffer) => resolve(framer.push(d)[0])));
    expect(decodeHandshakeV10(greeting.payload).capabilities & CLIENT_SSL).toBeTruthy();
    const sslRequest = encodePacket(1, encodeSslRequest({ capabilities: GATEWAY_CAPABILITIES, maxPacketSize: MAX_PACKET_PAYLOAD, characterSet: UTF8MB4_GENERAL_CI }));
    // The TLS client writes through this duplex; its first write (the ClientHello) goes out glued to the SSLRequest.
    let first = true;
    const inner = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        raw.write(first ? Buffer.concat([sslRequest, chunk]) : chunk, cb);
        first = false;
      },
    });
    raw.on('data', (d: Buffer) => inner.push(d));
    const secure = tls.connect({ socket: inner as unknown as net.Socket, ca: fs.readFileSync(certs.caFile), servername: 'localhost' });
    await new Promise<void>((resolve, reject) => { secure.once('secureConnect', () => resolve()); secure.once('error', reject); });
    const tlsFramer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD });
    const reply = new Promise<Packet>((resolve) => secure.once('data', (d: Buffer) => resolve(tlsFramer.push(d)[0])));
    secure.write(encodePacket(2, loginPacket()));
    const sw = await reply;
    expect(sw.sequenceId).toBe(3);
    expect(decodeAuthSwitchRequest(sw.payload).pluginName).toBe('mysql_clear_password');
    expect(replayed).toHaveBeenCalled(); // the gateway replayed the bytes it had read past the SSLRequest
    replayed.mockRestore();
    secure.destroy();
    raw.destroy();
  });

  test('pipelined commands are answered in order, including ones the gateway answers itself', async () => {
    const client = await RawClient.login(h.port, await h.token());
    try {
      client.write(Buffer.concat([
        encodePacket(0, encodeQuery('SELECT DATABASE()')),
        encodePacket(0, encodeQuery('USE analytics')),
        encodePacket(0, encodeQuery('SELECT DATABASE()')),
      ]));
      expect(await client.textResult()).toBe(h.names.app);
      const ok = await client.next();
      expect([ok.sequenceId, ok.payload[0]]).toEqual([1, 0x00]);
      expect(await client.textResult()).toBe(h.names.analytics);
    } finally {
      client.close();
    }
  });

  test('MariaDB execute-direct (PREPARE and EXECUTE of "the last statement" pipelined) is audited with its SQL', async () => {
    const client = await RawClient.login(h.port, await h.token());
    try {
      const sql = `SELECT 1 AS direct_${Date.now()}`;
      const execute = Buffer.from([0x17, 0xff, 0xff, 0xff, 0xff, 0x00, 1, 0, 0, 0]);
      client.write(Buffer.concat([encodePacket(0, Buffer.concat([Buffer.from([0x16]), Buffer.from(sql)])), encodePacket(0, execute)]));
      await h.audit.waitFor((e) => e.event === 'query' && e.sql === sql && String(e.tag).startsWith('PREPARED #'));
      await h.audit.waitFor((e) => e.event === 'query' && e.sql === sql && e.tag === '1 rows');
      client.send(0, encodeQuery('SELECT DATABASE()'));
      // Skip the two responses, then the session still answers in order.
      let value: string | null | undefined;
      for (let i = 0; i < 20 && value !== h.names.app; i++) {
        const p = await client.next();
        if (p.payload[0] === 0x01 && p.payloadLength === 1) {
          await client.next(); // column definition
          const row = await client.next();
          value = row.payload.subarray(1, 1 + row.payload[0]).toString('utf8');
        }
      }
      expect(value).toBe(h.names.app);
    } finally {
      client.close();
    }
  });

  test('replication commands are refused with 1047 and the session goes on', async () => {
    const client = await RawClient.login(h.port, await h.token());
    try {
      client.send(0, Buffer.from([0x12, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0]));
      const err = await client.next();
      expect(err.sequenceId).toBe(1);
      expect(decodeErr(err.payload)).toMatchObject({ code: 1047, sqlState: '08S01', message: expect.stringMatching(/replication/) });
      client.send(0, encodeQuery('SELECT DATABASE()'));
      expect(await client.textResult()).toBe(h.names.app);
    } finally {
      client.close();
    }
  });

  test('a client without CLIENT_PLUGIN_AUTH (it could not answer the AuthSwitchRequest) is refused with 1043', async () => {
    const client = await RawClient.connect(h.port);
    try {
      await client.next();
      const old = encodeHandshakeResponse41({
        capabilities: (GATEWAY_CAPABILITIES & ~CLIENT_SSL & ~CLIENT_PLUGIN_AUTH & ~CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA & ~CLIENT_CONNECT_ATTRS) >>> 0,
        maxPacketSize: MAX_PACKET_PAYLOAD, characterSet: UTF8MB4_GENERAL_CI, username: 'reader', authResponse: Buffer.alloc(20), database: 'app',
      });
      client.send(1, old);
      expect(decodeErr((await client.next()).payload)).toMatchObject({ code: 1043, message: expect.stringMatching(/CLIENT_PLUGIN_AUTH/) });
    } finally {
      client.close();
    }
  });

  test('a login packet out of sequence is a protocol error (1043)', async () => {
    const client = await RawClient.connect(h.port);
    try {
      await client.next();
      client.send(5, loginPacket());
      expect(decodeErr((await client.next()).payload)).toMatchObject({ code: 1043, message: expect.stringMatching(/sequence id 5 where 1/) });
    } finally {
      client.close();
    }
  });

  test('an oversized login packet is refused before it is read (1043)', async () => {
    const client = await RawClient.connect(h.port);
    try {
      await client.next();
      client.write(Buffer.from([0xf0, 0xff, 0xff, 1]));
      expect(decodeErr((await client.next()).payload)).toMatchObject({ code: 1043, message: expect.stringMatching(/at most/) });
    } finally {
      client.close();
    }
  });

  test('a client that never sends its login is dropped after authTimeout with 1043', async () => {
    const client = await RawClient.connect(quick.port);
    try {
      await client.next();
      const err = decodeErr((await client.next(AUTH_TIMEOUT_MS + 5000)).payload);
      expect(err).toMatchObject({ code: 1043, message: expect.stringMatching(new RegExp(`within ${AUTH_TIMEOUT_MS / 1000}s`)) });
      await quick.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'auth_timeout');
    } finally {
      client.close();
    }
  });
});

test('the pools never held more upstream connections than allowed', async () => {
  expect((await upstreamThreads(h, h.names.ro)).filter((t) => t.DB === h.names.analytics).length).toBeLessThanOrEqual(2);
});

test('no token or secret appears in any audit line', () => {
  const joined = h.audit.lines.join('\n');
  for (const secret of h.secrets) expect(joined).not.toContain(secret);
});

// ---- a raw protocol client -----------------------------------------------------------

function loginPacket(database = 'app', auth: { plugin: string; authResponse: Buffer } = { plugin: 'mysql_native_password', authResponse: Buffer.alloc(0) }): Buffer {
  return encodeHandshakeResponse41({
    capabilities: (GATEWAY_CAPABILITIES & ~CLIENT_SSL) >>> 0,
    maxPacketSize: MAX_PACKET_PAYLOAD,
    characterSet: UTF8MB4_GENERAL_CI,
    username: 'reader',
    authResponse: auth.authResponse,
    database,
    authPluginName: auth.plugin,
  });
}

class RawClient {
  private readonly framer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD });
  private readonly packets: Packet[] = [];
  /** Woken by every chunk that completes a packet, and by the socket closing. */
  private waiter?: () => void;
  private closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.packets.push(...this.framer.push(d));
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  /** Greeting, HandshakeResponse41, the token on the AuthSwitch, OK. */
  static async login(port: number, token: string): Promise<RawClient> {
    const c = await RawClient.connect(port);
    await c.next();
    c.send(1, loginPacket());
    await c.next();
    c.send(3, encodeClearPassword(token));
    const ok = await c.next();
    if (ok.payload[0] !== 0) throw new Error(`login failed: ${decodeErr(ok.payload).message}`);
    return c;
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  send(sequenceId: number, payload: Buffer): void {
    this.socket.write(encodePacket(sequenceId, payload));
  }

  /** The next packet from the gateway, as soon as it is complete. */
  async next(timeoutMs = 5000): Promise<Packet> {
    const deadline = Date.now() + timeoutMs;
    while (this.packets.length === 0) {
      if (this.closed) throw new Error('the gateway closed the connection instead of sending a packet');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no packet within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.packets.shift()!;
  }

  /** Reads a one-column, one-row text result set (this client negotiates DEPRECATE_EOF) and returns the value. */
  async textResult(): Promise<string | null> {
    const count = await this.next();
    if (count.payload[0] === 0xff) throw new Error(decodeErr(count.payload).message);
    expect(count.payload[0]).toBe(1);
    await this.next(); // column definition
    const row = await this.next();
    const end = await this.next();
    expect(end.payload[0]).toBe(0xfe); // OK-as-EOF (DEPRECATE_EOF was negotiated)
    if (row.payload[0] === 0xfb) return null;
    return row.payload.subarray(1, 1 + row.payload[0]).toString('utf8');
  }

  close(): void {
    this.socket.destroy();
  }
}
