/**
 * Hostile tokens against both listeners (issue 15, section 1). Every case is sent by a real
 * driver (node-postgres; mysql2 with mysql_clear_password) and must end in the protocol's own
 * refusal (PostgreSQL 28P01, MySQL 1045/28000), a connection_rejected audit record with the
 * case's reason, and no upstream connection (the pools and the server's own session list are
 * unchanged). Then: a flood of unknown kids, key rotation and an IdP outage. Everything the
 * gateways printed during the file is kept for test/security/secrets.ts, which greps it for
 * every token and password used (issue 15, section 5).
 */
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { Client } from 'pg';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import { MAX_ACCESS_TOKEN_BYTES } from '../../src/identity/tokenSize';
import { AUDIENCE, CLIENTS, startGatewayHarness, type Harness, type Protocol, type RunningGateway } from '../integration/harness';
import { waitFor } from '../helpers/waitFor';
import { run } from '../integration/clients';
import { attackerKey, b64url, claimsOf, hmacWithPublicKey, signWith, startRecorder, tamper, unsigned, type AttackerKey, type Recorder } from './forge';
import { capturePrinted, expectNothingLeaked, type Printed } from './secrets';

/** What the client saw: admitted (and ran a query), or refused with this code. */
type Outcome = { ok: true } | { ok: false; code: string; message: string };

/** The refusal each protocol must give a bad token. */
const REFUSED: Record<Protocol, string> = { postgres: '28P01', mysql: '1045/28000' };

async function connect(protocol: Protocol, port: number, password: string): Promise<Outcome> {
  if (protocol === 'postgres') {
    // A password function: node-postgres would otherwise replace an empty one with PGPASSWORD.
    const c = new Client({ host: '127.0.0.1', port, user: 'reader', database: 'app', password: () => password, connectionTimeoutMillis: 10_000 });
    try {
      await c.connect();
      await c.query('select 1');
      return { ok: true };
    } catch (err) {
      const e = err as { code?: string; message: string };
      return { ok: false, code: String(e.code), message: e.message };
    } finally {
      await c.end().catch(() => undefined);
    }
  }
  if (password === '') {
    // mysql2 sends a placeholder for an empty password; the mariadb CLI sends it as it is.
    const r = await run('mariadb', ['--no-defaults', '-h127.0.0.1', `-P${port}`, '-ureader', '-Dapp', '--skip-ssl', '--password=', '-e', 'SELECT 1']);
    const m = /^ERROR (\d+) \((\w+)\)[^:]*: (.*)$/m.exec(r.stderr);
    return r.code === 0 ? { ok: true } : { ok: false, code: m ? `${m[1]}/${m[2]}` : `exit ${r.code}`, message: m ? m[3] : r.stderr };
  }
  try {
    const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'reader', database: 'app', password, enableCleartextPlugin: true, connectTimeout: 10_000 });
    await c.query('SELECT 1');
    await c.end();
    return { ok: true };
  } catch (err) {
    const e = err as { errno?: number; sqlState?: string; code?: string; message: string };
    return { ok: false, code: e.errno ? `${e.errno}/${e.sqlState}` : String(e.code), message: e.message };
  }
}

/** Sessions the upstream server has for the gateway's upstream users (its own view, not the gateway's). */
async function upstreamSessions(h: Harness): Promise<number> {
  if (h.protocol === 'postgres') {
    return Number(await h.cluster.psql(`select count(*) from pg_stat_activity where usename in ('${h.names.ro}', '${h.names.rw}')`));
  }
  const rows = (await h.admin('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER IN (?, ?)', [h.names.ro, h.names.rw])) as { n: number }[];
  return Number(rows[0].n);
}

function poolConnections(g: RunningGateway): number {
  return Object.values(g.gateway.pools.stats()).reduce((n, s) => n + s.total + s.waiting, 0);
}

const now = (): number => Math.floor(Date.now() / 1000);

/** Everything a case may use to make its token. */
interface Ctx {
  h: Harness;
  attacker: AttackerKey;
  other: DevIssuer;
  recorder: Recorder;
  /** Claims of a good token, to forge from. */
  good(): Promise<Record<string, unknown>>;
  realKid(): string;
}

interface TokenCase {
  name: string;
  make(c: Ctx): Promise<string>;
  reason: string;
  text: RegExp;
}

const CASES: TokenCase[] = [
  { name: 'alg none', reason: 'algorithm_not_allowed', text: /unsigned \(alg "none"\)/, make: async (c) => unsigned(await c.good(), c.realKid()) },
  ...(['HS256', 'HS384'] as const).flatMap((alg) => (['pem', 'jwk'] as const).map((form): TokenCase => ({
    name: `${alg} with the IdP's public key as ${form === 'pem' ? 'PEM' : 'JWK bytes'}`,
    reason: 'algorithm_not_allowed',
    text: new RegExp(`shared-secret algorithm ${alg}, which the gateway never accepts`),
    make: async (c) => hmacWithPublicKey(c.h.issuer, await c.good(), alg, form),
  }))),
  { name: "the IdP's real kid, signed by another key", reason: 'bad_signature', text: /does not verify with key/, make: async (c) => signWith(c.attacker, await c.good(), { kid: c.realKid() }) },
  { name: 'an embedded jwk header', reason: 'key_in_header', text: /carries "jwk".*only from the JWKS/, make: async (c) => signWith(c.attacker, await c.good(), { kid: c.attacker.publicJwk.kid, jwk: c.attacker.publicJwk }) },
  { name: 'a jku header (never fetched)', reason: 'key_in_header', text: /carries "jku".*never fetches a URL from a token/, make: async (c) => signWith(c.attacker, await c.good(), { kid: c.attacker.publicJwk.kid, jku: `${c.recorder.url}/jwks.json` }) },
  { name: 'an x5u header (never fetched)', reason: 'key_in_header', text: /carries "x5u"/, make: async (c) => signWith(c.attacker, await c.good(), { kid: c.realKid(), x5u: `${c.recorder.url}/cert.pem` }) },
  { name: 'an unknown crit extension', reason: 'unsupported_critical_header', text: /marks extensions as critical .*does not implement/, make: (c) => c.h.token('svc-reporting', { header: { crit: ['urn:x-evil'], 'urn:x-evil': 1 }, crit: { 'urn:x-evil': true } }) },
  { name: 'a tampered payload', reason: 'bad_signature', text: /altered or not issued by/, make: async (c) => tamper(await c.h.token(), { groups: ['db-readers', 'db-admins'] }) },
  { name: 'iss with a lookalike prefix', reason: 'bad_issuer', text: /accepts tokens only from/, make: (c) => c.h.token('svc-reporting', { claims: { iss: `${c.h.issuer.issuer}.evil.example` } }) },
  { name: 'iss on a lookalike host', reason: 'bad_issuer', text: /accepts tokens only from/, make: (c) => c.h.token('svc-reporting', { claims: { iss: c.h.issuer.issuer.replace('127.0.0.1', '127.0.0.1.evil.example') } }) },
  { name: 'iss with a trailing slash', reason: 'bad_issuer', text: /accepts tokens only from/, make: (c) => c.h.token('svc-reporting', { claims: { iss: `${c.h.issuer.issuer}/` } }) },
  { name: 'a wrong aud', reason: 'bad_audience', text: /does not include the expected audience api:\/\/tokengate/, make: (c) => c.h.token('svc-reporting', { claims: { aud: 'api://someone-else' } }) },
  { name: 'expired', reason: 'expired', text: /expired at/, make: (c) => c.h.token('svc-reporting', { expiresInSec: -120, issuedAtSec: now() - 600 }) },
  { name: 'nbf in the future beyond the skew', reason: 'not_yet_valid', text: /not valid before/, make: (c) => c.h.token('svc-reporting', { notBeforeSec: now() + 60 }) },
  { name: 'iat in the future beyond the skew', reason: 'issued_in_future', text: /issued at .* in the future/, make: (c) => c.h.token('svc-reporting', { issuedAtSec: now() + 60, expiresInSec: 600 }) },
  { name: 'no exp', reason: 'missing_claim', text: /no "exp" claim/, make: (c) => c.h.token('svc-reporting', { omit: ['exp'] }) },
  { name: 'a lifetime over maxTokenLifetime', reason: 'lifetime_too_long', text: /longer than the 3600s/, make: (c) => c.h.token('svc-reporting', { expiresInSec: 2 * 3600 }) },
  { name: 'another issuer with the same claim shapes', reason: 'bad_issuer', text: /accepts tokens only from/, make: (c) => c.other.mintToken({ clientId: 'svc-reporting' }) },
  { name: "another issuer's key claiming this issuer", reason: 'unknown_key', text: /does not publish/, make: (c) => c.other.mintToken({ clientId: 'svc-reporting', claims: { iss: c.h.issuer.issuer } }) },
  { name: 'groups as a string', reason: 'invalid_claim', text: /"groups" claim is a string .*must be an array of strings/, make: (c) => c.h.token('svc-reporting', { claims: { groups: 'db-readers' } }) },
  { name: 'groups as an object', reason: 'invalid_claim', text: /"groups" claim is an object .*must be an array of strings/, make: (c) => c.h.token('svc-reporting', { claims: { groups: { 'db-readers': true } } }) },
  { name: 'scp as a number', reason: 'invalid_claim', text: /"scp" claim is a number/, make: (c) => c.h.token('svc-reporting', { claims: { scp: 1 } }) },
  { name: 'exp as a string', reason: 'invalid_claim', text: /"exp" claim is a string .*must be a number/, make: (c) => c.h.token('svc-reporting', { claims: { exp: String(now() + 300) } }) },
  { name: 'a sender-constrained token (cnf.jkt)', reason: 'sender_constrained', text: /bound to a key the agent holds.*must not be used as a bearer password/, make: (c) => c.h.token('svc-reporting', { claims: { cnf: { jkt: randomBytes(32).toString('base64url') } } }) },
  { name: 'non-JWT garbage', reason: 'malformed', text: /not a usable access token/, make: async () => randomBytes(300).toString('base64') },
  { name: 'a word, not a token', reason: 'malformed', text: /three base64url parts separated by dots/, make: async () => 'hunter2-not-a-token' },
  { name: 'an encrypted token (JWE)', reason: 'malformed', text: /JWE/, make: async () => ['a', 'b', 'c', 'd', 'e'].map((p) => b64url({ p })).join('.') },
  { name: 'an empty password', reason: 'no_token', text: /no access token: put your Okta access token where the password goes/, make: async () => '' },
];

/** Everything the gateways printed in this file: the secrets check reads it at the end. */
const printed: Printed = capturePrinted();
/** Every token and password sent in this file, good or forged. */
const sent: string[] = [];

describe.each(['postgres', 'mysql'] as const)('%s', (protocol) => {
  let h: Harness;
  let ctx: Ctx;
  /** A second gateway on the same issuer with short key timers, for rotation and the outage. */
  let quick: RunningGateway;

  beforeAll(async () => {
    h = protocol === 'postgres' ? await startGatewayHarness({ protocol: 'postgres' }) : await startGatewayHarness({ protocol: 'mysql' });
    quick = await h.startGateway({ oidc: { jwksCooldown: '1s', fetchTimeout: '1s' } });
    const attacker = await attackerKey();
    const other = await startDevIssuer({ audience: AUDIENCE, clients: CLIENTS });
    const recorder = await startRecorder({ keys: [attacker.publicJwk] });
    ctx = {
      h, attacker, other, recorder,
      good: async () => claimsOf(await h.token()),
      realKid: () => (h.issuer.publicJwks().keys[0] as { kid: string }).kid,
    };
    printed.watch(h.audit, quick.audit);
  }, 120_000);

  afterAll(async () => {
    printed.metrics.push(...(await Promise.all([h.gateway, quick.gateway].map((g) => g.metrics?.render() ?? Promise.resolve('')))));
    sent.push(...h.secrets);
    await ctx?.recorder.stop();
    await ctx?.other.stop();
    await h?.stop();
  });

  const attempt = async (port: number, password: string): Promise<Outcome> => {
    sent.push(password);
    const outcome = await connect(protocol, port, password);
    if (!outcome.ok) printed.clientErrors.push(outcome.message);
    return outcome;
  };

  test('a normal session is admitted', async () => {
    expect(await attempt(h.port, await h.token())).toEqual({ ok: true });
  });

  test.each(CASES.map((c) => [c.name, c] as const))('%s: refused, audited, no upstream connection', async (_name, tc) => {
    const token = await tc.make(ctx);
    const before = { upstream: await upstreamSessions(h), pools: poolConnections(h), audit: h.audit.records.length };
    const outcome = await attempt(h.port, token);
    expect(outcome).toMatchObject({ ok: false, code: REFUSED[protocol], message: expect.stringMatching(tc.text) });
    const record = await waitFor(() => h.audit.records.slice(before.audit).find((r) => r.event === 'connection_rejected'), { what: 'the connection_rejected record' });
    expect(record).toMatchObject({ protocol, reason: tc.reason, message: expect.stringContaining((outcome as { message: string }).message) });
    expect(poolConnections(h)).toBe(before.pools);
    expect(await upstreamSessions(h)).toBe(before.upstream);
    expect(ctx.recorder.requests).toEqual([]);
  });

  test(`a 100 KB token is refused at once: no parsing, no key fetch, no signature check`, async () => {
    const real = await h.token();
    const [head, , sig] = real.split('.');
    const huge = `${head}.${b64url({ ...claimsOf(real), pad: 'A'.repeat(100 * 1024) })}.${sig}`;
    const verifier = h.gateway.verifier();
    const before = { checks: verifier.stats.signatureChecks, jwks: h.issuer.requestCount('v1/keys'), audit: h.audit.records.length, upstream: await upstreamSessions(h) };
    const outcome = await attempt(h.port, huge);
    expect(outcome).toMatchObject({ ok: false, code: REFUSED[protocol], message: expect.stringMatching(new RegExp(`too large for an access token \\(at most ${MAX_ACCESS_TOKEN_BYTES} bytes`)) });
    const record = await waitFor(() => h.audit.records.slice(before.audit).find((r) => r.event === 'connection_rejected'), { what: 'the connection_rejected record' });
    expect(record.reason).toBe('token_too_large');
    expect(verifier.stats.signatureChecks).toBe(before.checks);
    expect(h.issuer.requestCount('v1/keys')).toBe(before.jwks);
    expect(await upstreamSessions(h)).toBe(before.upstream);
  });

  if (protocol === 'mysql') {
    test('a 100 KB token inside the login packet (libmariadb sends it there) is refused the same way', async () => {
      const real = await h.token();
      const [head, , sig] = real.split('.');
      // ~100 KB once encoded (an environment string holds at most 128 KiB).
      const huge = `${head}.${b64url({ ...claimsOf(real), pad: 'B'.repeat(75 * 1024) })}.${sig}`;
      sent.push(huge);
      const checks = h.gateway.verifier().stats.signatureChecks;
      const audit = h.audit.records.length;
      const r = await run('mariadb', ['--no-defaults', '-h127.0.0.1', `-P${h.port}`, '-ureader', '-Dapp', '--skip-ssl', '-e', 'SELECT 1'], { MYSQL_PWD: huge });
      printed.clientErrors.push(r.stderr);
      expect(r.stderr).toMatch(/ERROR 1045 \(28000\).*too large for an access token/);
      const record = await waitFor(() => h.audit.records.slice(audit).find((e) => e.event === 'connection_rejected'), { what: 'the connection_rejected record' });
      expect(record.reason).toBe('token_too_large');
      expect(h.gateway.verifier().stats.signatureChecks).toBe(checks);
    });
  }

  test('a flood of tokens with random kids: all refused, at most one JWKS fetch per jwksCooldown', async () => {
    const claims = await ctx.good();
    const tokens = await Promise.all(Array.from({ length: 40 }, () => signWith(ctx.attacker, claims, { kid: randomBytes(8).toString('hex') })));
    const before = { jwks: h.issuer.requestCount('v1/keys'), upstream: await upstreamSessions(h) };
    const started = Date.now();
    const outcomes: Outcome[] = [];
    for (let i = 0; i < tokens.length; i += 10) outcomes.push(...(await Promise.all(tokens.slice(i, i + 10).map((t) => attempt(h.port, t)))));
    const elapsed = Date.now() - started;
    for (const o of outcomes) expect(o).toMatchObject({ ok: false, code: REFUSED[protocol], message: expect.stringMatching(/does not publish/) });
    // The harness gateway keeps the default 30s cooldown and the flood takes far less.
    expect(elapsed).toBeLessThan(30_000);
    expect(h.issuer.requestCount('v1/keys') - before.jwks).toBeLessThanOrEqual(1);
    expect(await upstreamSessions(h)).toBe(before.upstream);
  });

  test('the IdP rotates its keys: tokens signed with the new key verify without a restart', async () => {
    expect(await attempt(quick.port, await h.token())).toEqual({ ok: true });
    await h.issuer.rotateKeys();
    const fresh = await h.token();
    // Refused as an unknown key at most until the cooldown (1s) allows a refetch, then admitted.
    await waitFor(async () => (await attempt(quick.port, fresh)).ok, { what: 'a token signed with the rotated key to be admitted', timeoutMs: 10_000, intervalMs: 250 });
    expect(await attempt(quick.port, await h.token())).toEqual({ ok: true });
  });

  test('the IdP hangs, then is gone: cached keys still verify, unknown kids are refused promptly, nothing hangs', async () => {
    const claims = await ctx.good();
    for (const outage of ['hang', 'stopped'] as const) {
      if (outage === 'hang') h.issuer.setAvailable(false, 'hang');
      else await h.issuer.stop();
      // A token the gateway has not seen, signed with the key it has cached.
      expect(await attempt(quick.port, await h.token())).toEqual({ ok: true });
      const started = Date.now();
      const unknown = await attempt(quick.port, await signWith(ctx.attacker, claims, { kid: `gone-${outage}` }));
      // At most one key fetch bounded by fetchTimeout (1s) stands between the client and its answer.
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(unknown).toMatchObject({ ok: false, code: REFUSED[protocol], message: expect.stringMatching(/does not publish|cannot obtain the signing keys/) });
    }
  });
});

test('nothing any gateway printed in this file contains a token, a password or a secret', () => {
  expectNothingLeaked(printed, sent);
});
