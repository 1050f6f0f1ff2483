/**
 * caching_sha2_password and AuthSwitchRequest handling of connectMysqlUpstream, against a small
 * fake server (no MySQL 8 on this machine). The server side is written here from the protocol
 * with its own crypto: it stores only password hashes, checks scrambles from them, and holds a
 * real RSA key pair whose private half decrypts what the client sends.
 */
import { constants as cryptoConstants, createHash, generateKeyPairSync, privateDecrypt, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import {
  CACHING_SHA2_PASSWORD,
  CLIENT_SSL,
  COM_QUERY,
  COM_QUIT,
  FORMAT_CAPABILITIES,
  GATEWAY_CAPABILITIES,
  MYSQL_CLEAR_PASSWORD,
  MYSQL_NATIVE_PASSWORD,
  PacketFramer,
  decodeHandshakeResponse41,
  encodeErr,
  encodeHandshakeV10,
  encodeOk,
  encodePacket,
  isSslRequest,
} from '../../protocols/mysql';
import { Secret } from '../../src/config/secret';
import { MysqlLoginError, MysqlLoginOptions, connectMysqlUpstream } from '../../src/mysql/login';
import { MysqlServerConnection } from '../../src/mysql/serverConnection';
import { PrefixedStream } from '../../src/net/prefixedStream';
import { makeTestCertificates } from '../helpers/tlsCert';

const PASSWORD = 'Sha2-secret-pass-4d2a';
const certs = makeTestCertificates();
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });

const sha1 = (...b: Buffer[]): Buffer => b.reduce((h, x) => h.update(x), createHash('sha1')).digest();
const sha256 = (...b: Buffer[]): Buffer => b.reduce((h, x) => h.update(x), createHash('sha256')).digest();
const xor = (a: Buffer, b: Buffer): Buffer => Buffer.from(a.map((v, i) => v ^ b[i % b.length]));
/** What the server stores: never the password itself. */
const NATIVE_STORED = sha1(sha1(Buffer.from(PASSWORD)));
const SHA2_STORED = sha256(sha256(Buffer.from(PASSWORD)));

/** Servers send printable scrambles without NUL bytes. */
function scramble(): Buffer {
  return Buffer.from(Array.from({ length: 20 }, () => randomInt(0x21, 0x7f)));
}

interface FakeOptions {
  greetingPlugin: string;
  /** After the HandshakeResponse, switch to this plugin with a fresh scramble. */
  switchTo?: string;
  /** caching_sha2: 'fast' answers a right scramble with 0x03 (cache hit); 'full' always asks for full authentication. */
  sha2Mode?: 'fast' | 'full';
  /** Advertise CLIENT_SSL and accept the TLS handshake. */
  tls?: boolean;
  /** Bytes sent right behind the greeting (an injection attempt). */
  afterGreeting?: Buffer;
}

interface Fake {
  port: number;
  /** What happened, in order: 'tls', 'response:<plugin>', 'switch:<plugin>', 'fast-ok', 'full-auth', 'key-requested', 'rsa-ok', 'clear-ok', 'native-ok', 'denied', 'query'. */
  events: string[];
  /** Every byte received on the TCP socket (before TLS decryption). */
  wire(): Buffer;
  close(): Promise<void>;
}

async function startFake(o: FakeOptions): Promise<Fake> {
  const events: string[] = [];
  const wire: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((raw) => {
    sockets.add(raw);
    raw.on('data', (d) => wire.push(d));
    raw.on('error', () => undefined);
    void converse(raw, o, events).catch(() => raw.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    events,
    wire: () => Buffer.concat(wire),
    close: () => {
      sockets.forEach((s) => s.destroy());
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Reads whole payloads from a socket. */
class Reader {
  #framer = new PacketFramer({ maxPayloadLength: 0xffffff });
  #queue: { seq: number; payload: Buffer }[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  constructor(readonly socket: net.Socket) {
    socket.on('data', this.#onData);
    socket.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
  }
  /** Bytes read from the socket before this reader existed. */
  feed(bytes: Buffer): void {
    if (bytes.length) this.#onData(bytes);
  }
  #onData = (chunk: Buffer): void => {
    for (const p of this.#framer.push(chunk)) this.#queue.push({ seq: p.sequenceId, payload: p.payload });
    this.#wake?.();
  };
  stop(): void {
    this.socket.removeListener('data', this.#onData);
  }
  async next(): Promise<{ seq: number; payload: Buffer }> {
    for (;;) {
      const p = this.#queue.shift();
      if (p) return p;
      if (this.#closed) throw new Error('closed');
      await new Promise<void>((r) => (this.#wake = r));
    }
  }
}

function firstPacket(raw: net.Socket): Promise<{ seq: number; payload: Buffer; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 4 || buf.length < 4 + buf.readUIntLE(0, 3)) return;
      const end = 4 + buf.readUIntLE(0, 3);
      raw.removeListener('data', onData);
      raw.pause();
      resolve({ seq: buf[3], payload: buf.subarray(4, end), rest: buf.subarray(end) });
    };
    raw.on('data', onData);
    raw.once('close', () => reject(new Error('closed')));
  });
}

async function converse(raw: net.Socket, o: FakeOptions, events: string[]): Promise<void> {
  let socket: net.Socket = raw;
  let salt = scramble();
  const caps = ((GATEWAY_CAPABILITIES & ~(o.tls ? 0 : CLIENT_SSL)) >>> 0);
  const greeting = encodePacket(0, encodeHandshakeV10({
    serverVersion: '8.0.36-fake', connectionId: 77, authPluginData: salt, capabilities: caps,
    characterSet: 45, statusFlags: 2, authPluginName: o.greetingPlugin,
  }));
  // One write, so the injected bytes arrive in the same chunk as the greeting.
  raw.write(o.afterGreeting ? Buffer.concat([greeting, o.afterGreeting]) : greeting);

  // The first packet is read by hand: a TLS ClientHello may follow an SSLRequest in the same chunk.
  const first = await firstPacket(raw);
  let reader: Reader;
  let packet = { seq: first.seq, payload: first.payload };
  if (isSslRequest(first.payload)) {
    events.push('tls');
    socket = new tls.TLSSocket(new PrefixedStream(raw, first.rest) as unknown as net.Socket, { isServer: true, cert: readFileSync(certs.certFile), key: readFileSync(certs.keyFile) });
    reader = new Reader(socket);
    packet = await reader.next();
  } else {
    reader = new Reader(raw);
    reader.feed(first.rest);
    raw.resume();
  }
  const send = (payload: Buffer): void => void socket.write(encodePacket(++packet.seq & 0xff, payload));
  const next = async (): Promise<Buffer> => {
    packet = await reader.next();
    return packet.payload;
  };
  const ok = (): void => send(encodeOk({ statusFlags: 2 }, caps));
  const deny = (): void => {
    events.push('denied');
    send(encodeErr({ code: 1045, sqlState: '28000', message: "Access denied for user 'fake' (using password: YES)" }));
  };

  const response = decodeHandshakeResponse41(packet.payload, caps);
  events.push(`response:${response.authPluginName ?? ''}`);
  let plugin = response.authPluginName ?? '';
  let data = response.authResponse;
  if (o.switchTo) {
    salt = scramble();
    events.push(`switch:${o.switchTo}`);
    send(Buffer.concat([Buffer.from([0xfe]), Buffer.from(`${o.switchTo}\0`), salt, Buffer.from([0])]));
    plugin = o.switchTo;
    data = await next();
  }
  const tlsActive = socket !== raw;

  if (plugin === MYSQL_NATIVE_PASSWORD) {
    const stage1 = xor(data, sha1(salt, NATIVE_STORED));
    if (data.length !== 20 || !sha1(stage1).equals(NATIVE_STORED)) return deny();
    events.push('native-ok');
    ok();
  } else if (plugin === CACHING_SHA2_PASSWORD) {
    const candidate = data.length === 32 ? xor(data, sha256(SHA2_STORED, salt)) : Buffer.alloc(0);
    const scrambleOk = candidate.length === 32 && sha256(candidate).equals(SHA2_STORED);
    if (o.sha2Mode === 'fast') {
      if (!scrambleOk) return deny();
      events.push('fast-ok');
      send(Buffer.from([0x01, 0x03]));
      ok();
    } else {
      events.push('full-auth');
      send(Buffer.from([0x01, 0x04]));
      let reply = await next();
      let clear: Buffer;
      if (tlsActive) {
        clear = reply;
      } else {
        if (!(reply.length === 1 && reply[0] === 0x02)) return deny();
        events.push('key-requested');
        send(Buffer.concat([Buffer.from([0x01]), Buffer.from(rsa.publicKey)]));
        reply = await next();
        const plain = privateDecrypt({ key: rsa.privateKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, reply);
        clear = xor(plain, salt);
      }
      if (!clear.equals(Buffer.from(`${PASSWORD}\0`))) return deny();
      events.push(tlsActive ? 'clear-ok' : 'rsa-ok');
      ok();
    }
  } else if (plugin === MYSQL_CLEAR_PASSWORD) {
    if (!data.equals(Buffer.from(`${PASSWORD}\0`))) return deny();
    events.push('clear-ok');
    ok();
  } else {
    return; // a plugin this fake cannot check: wait for the client to give up
  }

  // Command phase: OK to every COM_QUERY, close on COM_QUIT.
  for (;;) {
    const cmd = await next().catch(() => undefined);
    if (!cmd || cmd[0] === COM_QUIT) return void socket.end();
    if (cmd[0] === COM_QUERY) events.push('query');
    socket.write(encodePacket(1, encodeOk({ statusFlags: 2, info: 'fake' }, caps)));
  }
}

const fakes: Fake[] = [];
const open: MysqlServerConnection[] = [];
afterAll(async () => {
  open.forEach((c) => c.close());
  await Promise.all(fakes.map((f) => f.close()));
  certs.cleanup();
});

async function fake(o: FakeOptions): Promise<Fake> {
  const f = await startFake(o);
  fakes.push(f);
  return f;
}

function opts(f: Fake, over: Partial<MysqlLoginOptions> = {}): MysqlLoginOptions {
  return {
    host: '127.0.0.1', port: f.port, tls: 'disable', user: 'fake', password: new Secret(PASSWORD, 'test'), database: '',
    capabilities: (GATEWAY_CAPABILITIES & FORMAT_CAPABILITIES) >>> 0, characterSet: 45, connectTimeoutMs: 5000, ...over,
  };
}

async function login(o: MysqlLoginOptions): Promise<MysqlServerConnection> {
  const c = await connectMysqlUpstream(o);
  open.push(c);
  return c;
}

async function refused(o: MysqlLoginOptions): Promise<MysqlLoginError> {
  const err = await connectMysqlUpstream(o).then(
    (c) => {
      c.close();
      throw new Error('the login was expected to fail');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MysqlLoginError);
  return err as MysqlLoginError;
}

const wrongPassword = (): Partial<MysqlLoginOptions> => ({ password: new Secret('not-the-password', 'test') });

describe('caching_sha2_password', () => {
  test('fast path: the server finds the scramble right (0x01 0x03), then OK', async () => {
    const f = await fake({ greetingPlugin: CACHING_SHA2_PASSWORD, sha2Mode: 'fast' });
    const c = await login(opts(f));
    expect(c.serverVersion).toBe('8.0.36-fake');
    expect(c.threadId).toBe(77);
    expect((await c.query('SELECT 1', 2000)).ok?.info).toBe('fake');
    expect(f.events).toEqual(['response:caching_sha2_password', 'fast-ok', 'query']);
  });

  test('fast path with a wrong password is refused with 1045', async () => {
    const f = await fake({ greetingPlugin: CACHING_SHA2_PASSWORD, sha2Mode: 'fast' });
    const err = await refused(opts(f, wrongPassword()));
    expect(err.code).toBe(1045);
    expect(err.message).not.toContain('not-the-password');
    expect(f.events).toEqual(['response:caching_sha2_password', 'denied']);
  });

  test('full authentication over TLS sends the password itself, inside TLS only', async () => {
    const f = await fake({ greetingPlugin: CACHING_SHA2_PASSWORD, sha2Mode: 'full', tls: true });
    const c = await login(opts(f, { tls: 'require' }));
    expect(c.socket).toBeInstanceOf(tls.TLSSocket);
    expect(f.events).toEqual(['tls', 'response:caching_sha2_password', 'full-auth', 'clear-ok']);
    expect(f.wire().includes(PASSWORD)).toBe(false);
  });

  test('full authentication without TLS: requests the RSA key (0x02) and sends RSA-OAEP(password ^ scramble)', async () => {
    const f = await fake({ greetingPlugin: CACHING_SHA2_PASSWORD, sha2Mode: 'full' });
    const c = await login(opts(f));
    expect((await c.query('SELECT 1', 2000)).ok).toBeDefined();
    expect(f.events).toEqual(['response:caching_sha2_password', 'full-auth', 'key-requested', 'rsa-ok', 'query']);
    expect(f.wire().includes(PASSWORD)).toBe(false);
  });

  test('full authentication with a wrong password is refused with 1045', async () => {
    const f = await fake({ greetingPlugin: CACHING_SHA2_PASSWORD, sha2Mode: 'full' });
    const err = await refused(opts(f, wrongPassword()));
    expect(err.code).toBe(1045);
    expect(f.events).toEqual(['response:caching_sha2_password', 'full-auth', 'key-requested', 'denied']);
  });
});

describe('AuthSwitchRequest from the server', () => {
  test('native greeting, switch to caching_sha2_password: the new scramble is used (RSA path)', async () => {
    const f = await fake({ greetingPlugin: MYSQL_NATIVE_PASSWORD, switchTo: CACHING_SHA2_PASSWORD, sha2Mode: 'full' });
    await login(opts(f));
    expect(f.events).toEqual(['response:mysql_native_password', 'switch:caching_sha2_password', 'full-auth', 'key-requested', 'rsa-ok']);
  });

  test('native greeting, switch to caching_sha2_password, fast path on the new scramble', async () => {
    const f = await fake({ greetingPlugin: MYSQL_NATIVE_PASSWORD, switchTo: CACHING_SHA2_PASSWORD, sha2Mode: 'fast' });
    await login(opts(f));
    expect(f.events).toEqual(['response:mysql_native_password', 'switch:caching_sha2_password', 'fast-ok']);
  });

  test('caching_sha2 greeting, switch to mysql_native_password', async () => {
    const f = await fake({ greetingPlugin: CACHING_SHA2_PASSWORD, switchTo: MYSQL_NATIVE_PASSWORD });
    await login(opts(f));
    expect(f.events).toEqual(['response:caching_sha2_password', 'switch:mysql_native_password', 'native-ok']);
  });

  test('an unknown greeting plugin is answered as mysql_native_password', async () => {
    const f = await fake({ greetingPlugin: 'client_ed25519', switchTo: MYSQL_NATIVE_PASSWORD });
    await login(opts(f));
    expect(f.events).toEqual(['response:mysql_native_password', 'switch:mysql_native_password', 'native-ok']);
  });

  test('a switch to mysql_clear_password without TLS is refused before the password is sent', async () => {
    const f = await fake({ greetingPlugin: MYSQL_NATIVE_PASSWORD, switchTo: MYSQL_CLEAR_PASSWORD });
    const err = await refused(opts(f));
    expect(err.message).toMatch(/mysql_clear_password, which would send the password unencrypted; refusing/);
    expect(err.message).toMatch(/"require" or "verify-full"/);
    expect(f.wire().includes(PASSWORD)).toBe(false);
  });

  test('a switch to mysql_clear_password over TLS sends the password', async () => {
    const f = await fake({ greetingPlugin: MYSQL_NATIVE_PASSWORD, switchTo: MYSQL_CLEAR_PASSWORD, tls: true });
    await login(opts(f, { tls: 'require' }));
    expect(f.events).toEqual(['tls', 'response:mysql_native_password', 'switch:mysql_clear_password', 'clear-ok']);
    expect(f.wire().includes(PASSWORD)).toBe(false);
  });

  test('a switch to a plugin tokengate does not speak is refused with the plugin named', async () => {
    const f = await fake({ greetingPlugin: MYSQL_NATIVE_PASSWORD, switchTo: 'client_ed25519' });
    const err = await refused(opts(f));
    expect(err.message).toMatch(/asked for the authentication plugin "client_ed25519"/);
    expect(err.message).toMatch(/mysql_native_password, caching_sha2_password/);
  });
});

describe('TLS negotiation against a misbehaving server', () => {
  test('tls require against a server without CLIENT_SSL stops before any credentials', async () => {
    const f = await fake({ greetingPlugin: CACHING_SHA2_PASSWORD, sha2Mode: 'fast' });
    const err = await refused(opts(f, { tls: 'require' }));
    expect(err.message).toMatch(/does not offer TLS, but tls is "require"/);
    expect(f.events).toEqual([]);
  });

  test('plaintext bytes queued behind the greeting are refused (no TLS upgrade on top of them)', async () => {
    const f = await fake({ greetingPlugin: CACHING_SHA2_PASSWORD, sha2Mode: 'fast', tls: true, afterGreeting: encodePacket(1, Buffer.from([0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00])) });
    const err = await refused(opts(f, { tls: 'require' }));
    expect(err.message).toMatch(/unexpected bytes after its greeting; refusing the connection/);
    expect(f.events).toEqual([]);
  });
});
