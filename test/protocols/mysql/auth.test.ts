/** Auth math against mysql2's own implementation, and a hand-made login to the real MariaDB. */
import { generateKeyPairSync, privateDecrypt, constants as cryptoConstants, randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import {
  CLIENT_DEPRECATE_EOF,
  CLIENT_SSL,
  COM_QUERY,
  COM_QUIT,
  GATEWAY_CAPABILITIES,
  MAX_PACKET_PAYLOAD,
  PacketFramer,
  ResponseTracker,
  UTF8MB4_GENERAL_CI,
  cachingSha2RsaEncrypt,
  cachingSha2Scramble,
  decodeClearPassword,
  decodeErr,
  decodeHandshakeV10,
  decodeOk,
  encodeHandshakeResponse41,
  encodePacket,
  encodeQuery,
  encodeSimpleCommand,
  isErr,
  isOk,
  nativePasswordScramble,
} from '../../../protocols/mysql';

// mysql2's package "exports" hides lib/, so load the files by path (mysql2 is a devDependency).
const MYSQL2_LIB = join(__dirname, '..', '..', '..', 'node_modules', 'mysql2', 'lib');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const auth41 = require(join(MYSQL2_LIB, 'auth_41.js')) as { calculateToken(pw: string, s1: Buffer, s2: Buffer): Buffer; xorRotating(a: Buffer, b: Buffer): Buffer };
// caching_sha2_password.js does not export calculateToken; drive its plugin as mysql2 does.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const sha2Plugin = require(join(MYSQL2_LIB, 'auth_plugins', 'caching_sha2_password.js')) as (o?: object) => (a: { connection: { config: { password: string } } }) => (data: Buffer) => Buffer;

describe('auth math matches mysql2', () => {
  const passwords = ['codec-pass', 'p', 'ünïcødé-パスワード', 'x'.repeat(300)];
  it.each(passwords)('native and caching_sha2 for %s', (pw) => {
    for (let i = 0; i < 5; i++) {
      const scramble = randomBytes(20);
      expect(nativePasswordScramble(pw, scramble).equals(auth41.calculateToken(pw, scramble.subarray(0, 8), scramble.subarray(8)))).toBe(true);
      const mysql2Token = sha2Plugin()({ connection: { config: { password: pw } } })(Buffer.concat([scramble, Buffer.from([0])]));
      expect(cachingSha2Scramble(pw, scramble).equals(mysql2Token)).toBe(true);
      // The trailing NUL servers append to the scramble does not change the result.
      expect(nativePasswordScramble(pw, Buffer.concat([scramble, Buffer.from([0])])).equals(nativePasswordScramble(pw, scramble))).toBe(true);
    }
  });
  it('empty password gives an empty reply', () => {
    expect(nativePasswordScramble('', randomBytes(20))).toHaveLength(0);
    expect(cachingSha2Scramble('', randomBytes(20))).toHaveLength(0);
  });
  it('caching_sha2 RSA: decrypts to (password NUL) XOR scramble, as mysql2 computes it', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const scramble = randomBytes(20);
    const pw = 'a-long-token-'.repeat(10);
    const sealed = cachingSha2RsaEncrypt(pw, scramble, pem);
    const plain = privateDecrypt({ key: privateKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, sealed);
    expect(plain.equals(auth41.xorRotating(Buffer.from(pw + '\0'), scramble))).toBe(true);
  });
  it('clear password: terminator optional, inner NUL and oversize rejected', () => {
    expect(decodeClearPassword(Buffer.from('tok\0'))).toBe('tok');
    expect(decodeClearPassword(Buffer.from('tok'))).toBe('tok');
    expect(() => decodeClearPassword(Buffer.from('to\0k\0'))).toThrow(expect.objectContaining({ code: 'malformed' }));
    expect(() => decodeClearPassword(Buffer.alloc(70000, 0x41))).toThrow(expect.objectContaining({ code: 'too_long' }));
  });
});

/** Minimal client over a real socket: every packet the server sends, in order. */
async function connect(): Promise<{ next(): Promise<Buffer>; send(seq: number, p: Buffer): void; close(): void }> {
  const sock = createConnection({ host: '127.0.0.1', port: 3306 });
  const framer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD });
  const queue: Buffer[] = [];
  let wake: (() => void) | undefined;
  sock.on('data', (d: Buffer) => {
    queue.push(...framer.push(d).map((p) => p.payload));
    wake?.();
  });
  await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
  return {
    async next() {
      while (queue.length === 0) await new Promise<void>((r) => (wake = r));
      return queue.shift()!;
    },
    send: (seq, p) => sock.write(encodePacket(seq, p)),
    close: () => sock.destroy(),
  };
}

async function login(password: string, caps: number) {
  const c = await connect();
  const greeting = decodeHandshakeV10(await c.next());
  const negotiated = (caps & greeting.capabilities) >>> 0;
  c.send(
    1,
    encodeHandshakeResponse41({
      capabilities: negotiated,
      maxPacketSize: MAX_PACKET_PAYLOAD,
      characterSet: UTF8MB4_GENERAL_CI,
      username: 'tg_codec',
      authResponse: nativePasswordScramble(password, greeting.authPluginData),
      database: 'test',
      authPluginName: 'mysql_native_password',
      connectAttributes: { _client_name: 'tokengate-codec-test' },
    }),
  );
  return { c, negotiated, reply: await c.next() };
}

describe('hand-made login to the real MariaDB (user tg_codec, see test/golden/mysql/README.md)', () => {
  beforeAll(async () => {
    // Make the test self-contained: (re)create the user with the known password.
    const { execFileSync } = await import('node:child_process');
    execFileSync('mariadb', ['-uroot', '-h127.0.0.1', '-e',
      "CREATE USER IF NOT EXISTS 'tg_codec'@'%' IDENTIFIED BY 'codec-pass'; ALTER USER 'tg_codec'@'%' IDENTIFIED BY 'codec-pass'; " +
      "CREATE USER IF NOT EXISTS 'tg_codec'@'localhost' IDENTIFIED BY 'codec-pass'; ALTER USER 'tg_codec'@'localhost' IDENTIFIED BY 'codec-pass'; " +
      "GRANT ALL ON test.* TO 'tg_codec'@'%'; GRANT ALL ON test.* TO 'tg_codec'@'localhost'"]);
  });

  it.each([
    ['with DEPRECATE_EOF', (GATEWAY_CAPABILITIES & ~CLIENT_SSL) >>> 0],
    ['without DEPRECATE_EOF', (GATEWAY_CAPABILITIES & ~CLIENT_SSL & ~CLIENT_DEPRECATE_EOF) >>> 0],
  ])('native password login succeeds and a query is tracked (%s)', async (_name, caps) => {
    const { c, negotiated, reply } = await login('codec-pass', caps);
    try {
      expect(isOk(reply, negotiated)).toBe(true);
      decodeOk(reply, negotiated);
      const tracker = new ResponseTracker(negotiated);
      c.send(0, encodeQuery("select 1 as a union all select 2; select 'x'"));
      tracker.begin(COM_QUERY);
      let packet: Buffer;
      do packet = await c.next();
      while (tracker.onPacket(packet, packet.length) === 'more');
      expect(tracker.outcome?.results.map((r) => r.kind)).toEqual(['rows', 'rows']);
      expect(tracker.outcome?.rows).toBe(3);
      c.send(0, encodeSimpleCommand(COM_QUIT));
    } finally {
      c.close();
    }
  });

  it('a wrong password gets ERR 1045 / 28000', async () => {
    const { c, reply } = await login('wrong', (GATEWAY_CAPABILITIES & ~CLIENT_SSL) >>> 0);
    c.close();
    expect(isErr(reply)).toBe(true);
    expect(decodeErr(reply)).toMatchObject({ code: 1045, sqlState: '28000' });
  });
});
