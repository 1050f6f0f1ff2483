/**
 * Property-based fuzzing of both client-side handshake state machines, through a real gateway
 * on real sockets: arbitrary sequences of handshake pieces (valid packets, boundary lengths,
 * random bytes, wrong sequence ids), cut into arbitrary chunks, end either in progress (the
 * gateway waits for more, and session.authTimeout then closes it with the protocol's error) or
 * in a protocol-native error. Never a crash, never a hang, never a malformed reply.
 */
import fc from 'fast-check';
import { parseConfig } from '../../src/config/load';
import { startGateway, type Gateway } from '../../src/core/gateway';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import { CLIENT_SSL, GATEWAY_CAPABILITIES, MAX_PACKET_PAYLOAD, UTF8MB4_GENERAL_CI, encodeClearPassword, encodeHandshakeResponse41, encodeSslRequest } from '../../protocols/mysql';
import { ManualClock } from '../helpers/manualClock';
import { MemoryTransport } from '../helpers/memoryTransport';
import { makeTestCertificates } from '../helpers/tlsCert';
import { fuzzParams, fuzzTimeout } from '../protocols/fuzzParams';
import { CANCEL_REQUEST_CODE, PG_PROTOCOL_3, RawConn, SSL_REQUEST_CODE, encodePacket, int32s, myPackets, pgMessages, pgPassword, pgStartup, pgTyped } from './wire';

const AUTH_TIMEOUT_MS = 5000;
const certs = makeTestCertificates();
const clock = new ManualClock();
let issuer: DevIssuer;
let gateway: Gateway;
let audit: MemoryTransport;

beforeAll(async () => {
  issuer = await startDevIssuer({ audience: 'api://tokengate', clients: [{ clientId: 'svc', clientSecret: 'svc-secret', groups: ['g'], scopes: ['db.connect'] }] });
  // The upstreams are never reached: no fuzzed token verifies.
  const yaml = `
listen: { postgres: 127.0.0.1:0, mysql: 127.0.0.1:0 }
tls: { allowPlaintextFromLoopback: true, certFile: ${certs.certFile}, keyFile: ${certs.keyFile} }
oidc: { issuer: ${issuer.issuer}, audience: api://tokengate, algorithms: [RS256], requiredScopes: [db.connect], groupsClaim: groups, devIssuer: true }
upstreams:
  pg:
    protocol: postgres
    host: 127.0.0.1
    port: 9
    tls: disable
    databases: { app: app }
    roles: { reader: { user: u, password: \${PW} } }
  my:
    protocol: mysql
    host: 127.0.0.1
    port: 9
    tls: disable
    databases: { app: app }
    roles: { reader: { user: u, password: \${PW} } }
grants:
  - { name: pg, match: { groups: [g] }, upstream: pg, databases: [app], roles: [reader] }
  - { name: my, match: { groups: [g] }, upstream: my, databases: [app], roles: [reader] }
audit: { file: stdout }
session: { authTimeout: ${AUTH_TIMEOUT_MS / 1000}s }
`;
  audit = new MemoryTransport();
  gateway = await startGateway(parseConfig(yaml, '<fuzz>', { PW: 'fuzz-upstream-password' }), { auditTransport: audit, clock });
}, 60000);

afterAll(async () => {
  await gateway?.close();
  await issuer?.stop();
  certs.cleanup();
});

/** Cuts `bytes` at the given points. */
function chunked(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    if (p > prev) out.push(bytes.subarray(prev, p));
    prev = p;
  }
  return out;
}

/** Sends the chunks, lets the gateway answer, then moves the clock past authTimeout: the connection must close. */
async function drive(port: number, chunks: Buffer[]): Promise<{ received: Buffer; closedBeforeTimeout: boolean }> {
  const c = await RawConn.connect(port);
  for (const ch of chunks) {
    if (c.closedAt !== undefined) break;
    await c.write(ch);
    await new Promise((r) => setImmediate(r));
  }
  // Quiet: no new bytes for a few polls (or closed).
  let last = -1;
  for (let stable = 0; stable < 3 && c.closedAt === undefined;) {
    await new Promise((r) => setTimeout(r, 10));
    stable = c.received.length === last ? stable + 1 : 0;
    last = c.received.length;
  }
  const closedBeforeTimeout = c.closedAt !== undefined;
  clock.advance(AUTH_TIMEOUT_MS + 1);
  await c.closedWithin(10_000).catch((err) => {
    c.destroy();
    throw err;
  });
  return { received: c.received, closedBeforeTimeout };
}

const lengths = fc.constantFrom(0, 1, 3, 4, 7, 8, 9, 10000, 10001, 65536, 65541, 0x3fffffff, 0x7fffffff, 0x80000000, 0xffffffff);

// ---- PostgreSQL -------------------------------------------------------------------------

const pgPiece = fc.oneof(
  fc.record({ user: fc.constantFrom('reader', ''), database: fc.constantFrom('app', 'x') }).map((p) => pgStartup(p)),
  fc.constant(int32s(8, SSL_REQUEST_CODE)),
  fc.constant(int32s(8, 80877104)), // GSSENCRequest
  fc.tuple(fc.nat(), fc.uint8Array({ minLength: 4, maxLength: 4 })).map(([pid, key]) => Buffer.concat([int32s(16, CANCEL_REQUEST_CODE, pid), Buffer.from(key)])),
  fc.string({ maxLength: 80 }).map((t) => pgPassword(t)),
  fc.tuple(fc.constantFrom('p', 'Q', 'X', 'E'), fc.uint8Array({ maxLength: 40 })).map(([t, b]) => pgTyped(t, Buffer.from(b))),
  lengths.map((n) => int32s(n, PG_PROTOCOL_3)),
  fc.tuple(fc.constantFrom('p', 'Q'), lengths).map(([t, n]) => Buffer.concat([Buffer.from(t), int32s(n)])),
  fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b)),
);

test('PostgreSQL handshake: any pieces in any chunks end in progress or a FATAL ErrorResponse, never a crash or hang', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(pgPiece, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 8 }), async (pieces, cuts) => {
      const { received } = await drive(gateway.postgres!.port, chunked(Buffer.concat(pieces), cuts));
      // Single-byte answers to SSLRequest/GSSENCRequest come first; after an 'S' the rest is TLS.
      let at = 0;
      while (at < received.length && (received[at] === 0x4e || received[at] === 0x53)) {
        if (received[at++] === 0x53) return;
      }
      const messages = pgMessages(received, at);
      const consumed = messages.reduce((n, m) => n + 5 + m.body.length, at);
      expect(consumed).toBe(received.length); // whole messages only
      for (const m of messages) expect(['R', 'v', 'E']).toContain(m.type);
      if (messages.length > 0) {
        const last = messages[messages.length - 1];
        expect(last.type).toBe('E');
        const f = pgMessages(received, at).filter((m) => m.type === 'E').map((m) => m.body.toString('latin1'));
        expect(f[f.length - 1]).toMatch(/SFATAL\0.*C[0-9A-Z]{5}\0/s);
      }
    }),
    fuzzParams(60),
  );
}, fuzzTimeout(240_000));

// ---- MySQL ----------------------------------------------------------------------------------

const login = (o: { plugin: string; auth: Buffer; caps: number }): Buffer => encodeHandshakeResponse41({
  capabilities: o.caps,
  maxPacketSize: MAX_PACKET_PAYLOAD,
  characterSet: UTF8MB4_GENERAL_CI,
  username: 'reader',
  authResponse: o.auth,
  database: 'app',
  authPluginName: o.plugin,
});

const myPayload = fc.oneof(
  fc.record({
    plugin: fc.constantFrom('mysql_native_password', 'mysql_clear_password', 'caching_sha2_password', ''),
    auth: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
    caps: fc.oneof(fc.constant((GATEWAY_CAPABILITIES & ~CLIENT_SSL) >>> 0), fc.nat()),
  }).map(login),
  fc.constant(encodeSslRequest({ capabilities: GATEWAY_CAPABILITIES, maxPacketSize: MAX_PACKET_PAYLOAD, characterSet: UTF8MB4_GENERAL_CI })),
  fc.string({ maxLength: 80 }).map((t) => encodeClearPassword(t)),
  fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b)),
);
const myPiece = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.oneof(fc.constantFrom(1, 3), fc.integer({ min: 0, max: 255 })), myPayload).map(([seq, p]) => encodePacket(seq, p)) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 0xffffff }), fc.integer({ min: 0, max: 255 })).map(([len, seq]) => Buffer.from([len & 0xff, (len >> 8) & 0xff, len >> 16, seq])) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b)) },
);

test('MySQL handshake: any pieces in any chunks end in progress or an ERR packet, never a crash or hang', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(myPiece, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 8 }), async (pieces, cuts) => {
      const { received } = await drive(gateway.mysql!.port, chunked(Buffer.concat(pieces), cuts));
      const packets = myPackets(received);
      expect(packets[0]).toMatchObject({ sequenceId: 0 });
      expect(packets[0].payload[0]).toBe(10); // HandshakeV10
      const consumed = packets.reduce((n, p) => n + 4 + p.payload.length, 0);
      // After an accepted SSLRequest the rest is TLS (no plaintext packet follows the greeting then).
      if (consumed !== received.length) {
        expect(packets).toHaveLength(1);
        return;
      }
      const after = packets.slice(1);
      for (const p of after) expect([0xfe, 0xff]).toContain(p.payload[0]); // AuthSwitchRequest or ERR; never OK
      if (after.length > 0) expect(after[after.length - 1].payload[0]).toBe(0xff);
    }),
    fuzzParams(60),
  );
}, fuzzTimeout(240_000));

test('the gateway is still serving after the fuzzing', async () => {
  expect(gateway.sessions.size).toBe(0);
  const { received } = await drive(gateway.postgres!.port, [pgStartup({ user: 'reader', database: 'app' })]);
  expect(pgMessages(received)[0].type).toBe('R');
});
