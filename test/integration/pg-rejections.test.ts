import net from 'node:net';
import tls from 'node:tls';
import { Client } from 'pg';
import { createPublicKey } from 'node:crypto';
import { SignJWT } from 'jose';
import { startGatewayHarness, type PgHarness, type RunningGateway } from './harness';
import { psql } from './clients';
import { waitFor } from '../helpers/waitFor';
import { makeTestCertificates } from '../helpers/tlsCert';

/**
 * Every way a connection is refused reaches the client as a PostgreSQL ErrorResponse with a
 * fitting SQLSTATE and a message that says what to do, and is audited with its reason.
 */
let h: PgHarness;
const certs = makeTestCertificates();
/** A second gateway with a short session.authTimeout, so the timeout test waits one second, not five. */
const AUTH_TIMEOUT_MS = 1000;
let quick: RunningGateway;

beforeAll(async () => {
  h = await startGatewayHarness({
    protocol: 'postgres',
    pool: '{ maxConnections: 2, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 1s }',
    tls: { certFile: certs.certFile, keyFile: certs.keyFile },
  });
  quick = await h.startGateway({ authTimeout: `${AUTH_TIMEOUT_MS / 1000}s` });
}, 120000);

afterAll(async () => {
  await h?.stop();
  certs.cleanup();
});

interface PgError { code?: string; message: string; severity?: string }

async function connectError(password: string, o: { user?: string; database?: string } = {}): Promise<PgError> {
  const c = new Client({ host: '127.0.0.1', port: h.port, user: o.user ?? 'reader', database: o.database ?? 'app', password });
  try {
    await c.connect();
  } catch (err) {
    return err as PgError;
  } finally {
    await c.end().catch(() => undefined);
  }
  throw new Error('connection unexpectedly succeeded');
}

function b64url(o: object): string {
  return Buffer.from(JSON.stringify(o)).toString('base64url');
}

async function claimsOf(token: string): Promise<Record<string, unknown>> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}

const now = () => Math.floor(Date.now() / 1000);

describe('token rejection classes', () => {
  const cases: [string, () => Promise<string>, string, RegExp][] = [
    ['expired', () => h.token('svc-reporting', { expiresInSec: -120, issuedAtSec: now() - 600 }), 'expired', /expired/i],
    ['not yet valid', () => h.token('svc-reporting', { notBeforeSec: now() + 600 }), 'not_yet_valid', /not (yet )?valid/i],
    ['wrong issuer', () => h.token('svc-reporting', { claims: { iss: 'https://evil.example.com/oauth2/default' } }), 'bad_issuer', /issued by .* accepts tokens only from/],
    ['wrong audience', () => h.token('svc-reporting', { claims: { aud: 'api://other' } }), 'bad_audience', /audience/i],
    ['lifetime too long', () => h.token('svc-reporting', { expiresInSec: 5 * 3600 }), 'lifetime_too_long', /lifetime|longer/i],
    ['missing scope', () => h.token('svc-reporting', { claims: { scp: ['profile'] } }), 'missing_scope', /db\.connect/],
    ['unknown kid', () => h.token('svc-reporting', { kid: 'no-such-key' }), 'unknown_key', /key/i],
    ['alg none', async () => {
      const claims = await claimsOf(await h.token());
      return `${b64url({ alg: 'none' })}.${b64url(claims)}.`;
    }, 'algorithm_not_allowed', /unsigned.*only signed tokens are accepted/],
    ['HS256 signed with the IdP public key', async () => {
      const claims = await claimsOf(await h.token());
      const jwk = h.issuer.publicJwks().keys[0] as { kid?: string };
      const pem = createPublicKey({ key: jwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: jwk.kid }).sign(Buffer.from(pem));
    }, 'algorithm_not_allowed', /algorithm/i],
    ['tampered payload', async () => {
      const [head, , sig] = (await h.token()).split('.');
      const claims = await claimsOf(await h.token());
      return `${head}.${b64url({ ...claims, groups: ['db-admins'] })}.${sig}`;
    }, 'bad_signature', /signature/i],
    ['not a JWT at all', async () => 'hunter2', 'malformed', /token/i],
  ];

  test.each(cases)('%s -> 28P01 with an actionable message, audited', async (_name, make, reason, text) => {
    const token = await make();
    const err = await connectError(token);
    expect(err.code).toBe('28P01');
    expect(err.message).toMatch(text);
    expect(err.message).not.toContain(token);
    await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === reason);
  });
});

describe('grants', () => {
  test('role not granted lists the roles that are', async () => {
    const err = await connectError(await h.token(), { user: 'writer' });
    expect(err.code).toBe('28000');
    expect(err.message).toMatch(/role "writer" is not granted.*reader/);
    await h.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'role_not_granted' && e.role === 'writer');
  });

  test('database not granted', async () => {
    const err = await connectError(await h.token('0oa1svcbilling'), { user: 'writer', database: 'analytics' });
    expect(err.code).toBe('28000');
    expect(err.message).toMatch(/analytics/);
    expect(err.message).toMatch(/app/);
  });

  test('unknown database is 3D000', async () => {
    const err = await connectError(await h.token(), { database: 'payroll' });
    expect(err.code).toBe('3D000');
    expect(err.message).toMatch(/payroll/);
  });

  test('a token no grant matches', async () => {
    const err = await connectError(await h.token('svc-nobody'));
    expect(err.code).toBe('28000');
    expect(err.message).toMatch(/no grant/i);
  });

  test('client-credentials token matched by client id and scope (no groups)', async () => {
    const c = new Client({ host: '127.0.0.1', port: h.port, user: 'writer', database: 'app', password: await h.token('0oa1svcbilling') });
    await c.connect();
    expect((await c.query('select current_user u')).rows[0].u).toBe('agent_rw');
    await c.end();
  });
});

test('pool exhausted -> 53300 after acquireTimeout', async () => {
  const token = await h.token();
  const held = [0, 1].map(() => new Client({ host: '127.0.0.1', port: h.port, user: 'reader', database: 'analytics', password: token }));
  for (const c of held) await c.connect();
  try {
    const err = await connectError(token, { database: 'analytics' });
    expect(err.code).toBe('53300');
    expect(err.message).toMatch(/2/);
  } finally {
    for (const c of held) await c.end();
  }
});

test('the session ends with a FATAL "token expired" when the token runs out', async () => {
  const token = await h.token('svc-reporting', { expiresInSec: 3 });
  const c = new Client({ host: '127.0.0.1', port: h.port, user: 'reader', database: 'app', password: token });
  const errors: PgError[] = [];
  c.on('error', (e) => errors.push(e as PgError));
  await c.connect();
  expect((await c.query('select 1 as one')).rows[0].one).toBe(1);
  await waitFor(() => errors.length > 0, { what: 'the FATAL that ends the session when the token expires', timeoutMs: 10000 });
  expect(errors.length).toBeGreaterThanOrEqual(1);
  expect(errors[0].message).toMatch(/expired.*fresh token/);
  await h.audit.waitFor((e) => e.event === 'session_end' && e.reason === 'token_expired' && e.upstreamReused === true);
  await c.end().catch(() => undefined);
});

describe('TLS and plaintext policy', () => {
  test('psql with sslmode=verify-full gets TLS from the gateway', async () => {
    const r = await psql(h, await h.token(), 'select 1', { sslmode: 'verify-full', env: { PGSSLROOTCERT: certs.caFile } });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('1');
    await h.audit.waitFor((e) => e.event === 'connection_accepted' && e.tls === true);
  });

  test('PG17 direct TLS (ALPN postgresql) is accepted', async () => {
    const sock = tls.connect({ host: '127.0.0.1', port: h.port, ca: require('node:fs').readFileSync(certs.caFile), servername: 'localhost', ALPNProtocols: ['postgresql'] });
    await new Promise<void>((resolve, reject) => { sock.once('secureConnect', () => resolve()); sock.once('error', reject); });
    expect(sock.alpnProtocol).toBe('postgresql');
    sock.write(startupPacket({ user: 'reader', database: 'app' }));
    const reply = await firstBytes(sock);
    expect(String.fromCharCode(reply[0])).toBe('R');
    expect(reply.readInt32BE(5)).toBe(3); // AuthenticationCleartextPassword
    sock.destroy();
  });
});

describe('startup edge cases on the raw wire', () => {
  test('GSSENCRequest gets N, then a normal startup proceeds', async () => {
    const sock = await rawConnect();
    sock.write(int32s(8, 80877104));
    expect((await firstBytes(sock)).toString()).toBe('N');
    sock.write(startupPacket({ user: 'reader', database: 'app' }));
    const reply = await firstBytes(sock);
    expect(reply[0]).toBe('R'.charCodeAt(0));
    sock.destroy();
  });

  test('protocol 3.9999 with _pq_ options gets NegotiateProtocolVersion (PG19 grease)', async () => {
    const sock = await rawConnect();
    sock.write(startupPacket({ user: 'reader', database: 'app', '_pq_.test_grease': 'x' }, (3 << 16) | 9999));
    const reply = await firstBytes(sock);
    expect(String.fromCharCode(reply[0])).toBe('v');
    expect(reply.readInt32BE(5)).toBe(3 << 16); // newest minor we speak: 3.0
    expect(reply.readInt32BE(9)).toBe(1);
    expect(reply.toString('utf8', 13, 13 + '_pq_.test_grease'.length)).toBe('_pq_.test_grease');
    sock.destroy();
  });

  test('replication connections are refused', async () => {
    const sock = await rawConnect();
    sock.write(startupPacket({ user: 'reader', database: 'app', replication: 'database' }));
    const reply = await firstBytes(sock);
    expect(String.fromCharCode(reply[0])).toBe('E');
    expect(reply.toString()).toMatch(/0A000/);
    expect(reply.toString()).toMatch(/replication/);
    sock.destroy();
  });

  test('an oversized startup packet is a protocol violation', async () => {
    const sock = await rawConnect();
    sock.write(int32s(100000, 196608));
    const reply = await firstBytes(sock);
    expect(reply.toString()).toMatch(/08P01/);
    sock.destroy();
  });

  test('a client that never sends its token is cut off after session.authTimeout', async () => {
    const sock = await rawConnect(quick.port);
    sock.write(startupPacket({ user: 'reader', database: 'app' }));
    const ask = await firstBytes(sock);
    expect(ask.readInt32BE(5)).toBe(3); // AuthenticationCleartextPassword
    const started = Date.now();
    const reply = await firstBytes(sock, AUTH_TIMEOUT_MS + 5000);
    // Not cut off early: the clock runs from the connect, a little before `started`.
    expect(Date.now() - started).toBeGreaterThan(AUTH_TIMEOUT_MS * 0.6);
    expect(reply.toString()).toMatch(new RegExp(`did not receive a startup message and access token within ${AUTH_TIMEOUT_MS / 1000}s`));
    await quick.audit.waitFor((e) => e.event === 'connection_rejected' && e.reason === 'auth_timeout');
    sock.destroy();
  });

  test('plaintext bytes behind an SSLRequest are refused', async () => {
    const sock = await rawConnect();
    sock.write(Buffer.concat([int32s(8, 80877103), startupPacket({ user: 'reader' })]));
    const reply = await firstBytes(sock);
    expect(reply.toString()).toMatch(/08P01/);
    sock.destroy();
  });
});

test('no token or secret appears in any audit line', () => {
  const joined = h.audit.lines.join('\n');
  for (const secret of h.secrets) expect(joined).not.toContain(secret);
});

// ---- raw wire helpers -------------------------------------------------------------

function int32s(...n: number[]): Buffer {
  const b = Buffer.alloc(n.length * 4);
  n.forEach((v, i) => b.writeInt32BE(v, i * 4));
  return b;
}

function startupPacket(params: Record<string, string>, version = 196608): Buffer {
  const body = Buffer.concat([...Object.entries(params).flatMap(([k, v]) => [Buffer.from(k + '\0'), Buffer.from(v + '\0')]), Buffer.from([0])]);
  return Buffer.concat([int32s(body.length + 8, version), body]);
}

function rawConnect(port = h.port): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

function firstBytes(sock: net.Socket, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply within ${timeoutMs}ms`)), timeoutMs);
    sock.once('data', (d: Buffer) => {
      clearTimeout(timer);
      resolve(d);
    });
    sock.once('error', reject);
  });
}
