/**
 * The hostile-token cases of the security suite (issue 15, section 1), shared by the in-process
 * test (test/security/tokens.test.ts) and the one against a `tokengate start` process
 * (test/security/process-output.test.ts). Each names the audit reason and the message the
 * agent must get; docs/security.md lists the same cases.
 */
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { Client } from 'pg';
import type { DevIssuer, MintOptions } from '../../src/dev/devIssuer';
import { run } from '../integration/clients';
import type { Protocol } from '../integration/harness';
import { attackerKey, b64url, claimsOf, hmacWithPublicKey, signWith, startRecorder, tamper, unsigned, type AttackerKey, type Recorder } from './forge';

export const now = (): number => Math.floor(Date.now() / 1000);

/** What the client saw: admitted (and ran a query), or refused with this code. */
export type Outcome = { ok: true } | { ok: false; code: string; message: string };

/** The refusal each protocol must give a bad token. */
export const REFUSED: Record<Protocol, string> = { postgres: '28P01', mysql: '1045/28000' };

export async function connect(protocol: Protocol, port: number, password: string): Promise<Outcome> {
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

/** Everything a case may use to make its token. */
export interface Ctx {
  /** The gateway's issuer. */
  issuer: DevIssuer;
  /** A token from that issuer (recorded as a secret by whoever makes it). */
  token(clientId?: string, o?: MintOptions): Promise<string>;
  attacker: AttackerKey;
  other: DevIssuer;
  recorder: Recorder;
  /** Claims of a good token, to forge from. */
  good(): Promise<Record<string, unknown>>;
  realKid(): string;
}

export interface TokenCase {
  name: string;
  make(c: Ctx): Promise<string>;
  reason: string;
  text: RegExp;
}

export const CASES: TokenCase[] = [
  { name: 'alg none', reason: 'algorithm_not_allowed', text: /unsigned \(alg "none"\)/, make: async (c) => unsigned(await c.good(), c.realKid()) },
  ...(['HS256', 'HS384'] as const).flatMap((alg) => (['pem', 'jwk'] as const).map((form): TokenCase => ({
    name: `${alg} with the IdP's public key as ${form === 'pem' ? 'PEM' : 'JWK bytes'}`,
    reason: 'algorithm_not_allowed',
    text: new RegExp(`shared-secret algorithm ${alg}, which the gateway never accepts`),
    make: async (c) => hmacWithPublicKey(c.issuer, await c.good(), alg, form),
  }))),
  { name: "the IdP's real kid, signed by another key", reason: 'bad_signature', text: /does not verify with key/, make: async (c) => signWith(c.attacker, await c.good(), { kid: c.realKid() }) },
  { name: 'an embedded jwk header', reason: 'key_in_header', text: /carries "jwk".*only from the JWKS/, make: async (c) => signWith(c.attacker, await c.good(), { kid: c.attacker.publicJwk.kid, jwk: c.attacker.publicJwk }) },
  { name: 'a jku header (never fetched)', reason: 'key_in_header', text: /carries "jku".*never fetches a URL from a token/, make: async (c) => signWith(c.attacker, await c.good(), { kid: c.attacker.publicJwk.kid, jku: `${c.recorder.url}/jwks.json` }) },
  { name: 'an x5u header (never fetched)', reason: 'key_in_header', text: /carries "x5u"/, make: async (c) => signWith(c.attacker, await c.good(), { kid: c.realKid(), x5u: `${c.recorder.url}/cert.pem` }) },
  { name: 'an unknown crit extension', reason: 'unsupported_critical_header', text: /marks extensions as critical .*does not implement/, make: (c) => c.token('svc-reporting', { header: { crit: ['urn:x-evil'], 'urn:x-evil': 1 }, crit: { 'urn:x-evil': true } }) },
  { name: 'a tampered payload', reason: 'bad_signature', text: /altered or not issued by/, make: async (c) => tamper(await c.token(), { groups: ['db-readers', 'db-admins'] }) },
  { name: 'iss with a lookalike prefix', reason: 'bad_issuer', text: /accepts tokens only from/, make: (c) => c.token('svc-reporting', { claims: { iss: `${c.issuer.issuer}.evil.example` } }) },
  { name: 'iss on a lookalike host', reason: 'bad_issuer', text: /accepts tokens only from/, make: (c) => c.token('svc-reporting', { claims: { iss: c.issuer.issuer.replace('127.0.0.1', '127.0.0.1.evil.example') } }) },
  { name: 'iss with a trailing slash', reason: 'bad_issuer', text: /differ only in the trailing slash, so a new token will not help: the gateway operator must set oidc.issuer/, make: (c) => c.token('svc-reporting', { claims: { iss: `${c.issuer.issuer}/` } }) },
  { name: 'a wrong aud', reason: 'bad_audience', text: /does not include the expected audience api:\/\/tokengate/, make: (c) => c.token('svc-reporting', { claims: { aud: 'api://someone-else' } }) },
  { name: 'expired', reason: 'expired', text: /expired at/, make: (c) => c.token('svc-reporting', { expiresInSec: -120, issuedAtSec: now() - 600 }) },
  { name: 'nbf in the future beyond the skew', reason: 'not_yet_valid', text: /not valid before/, make: (c) => c.token('svc-reporting', { notBeforeSec: now() + 60 }) },
  { name: 'iat in the future beyond the skew', reason: 'issued_in_future', text: /issued at .* in the future/, make: (c) => c.token('svc-reporting', { issuedAtSec: now() + 60, expiresInSec: 600 }) },
  { name: 'no exp', reason: 'missing_claim', text: /no "exp" claim/, make: (c) => c.token('svc-reporting', { omit: ['exp'] }) },
  { name: 'a lifetime over maxTokenLifetime', reason: 'lifetime_too_long', text: /longer than the 3600s/, make: (c) => c.token('svc-reporting', { expiresInSec: 2 * 3600 }) },
  { name: 'another issuer with the same claim shapes', reason: 'bad_issuer', text: /accepts tokens only from/, make: (c) => c.other.mintToken({ clientId: 'svc-reporting' }) },
  { name: "another issuer's key claiming this issuer", reason: 'unknown_key', text: /does not publish/, make: (c) => c.other.mintToken({ clientId: 'svc-reporting', claims: { iss: c.issuer.issuer } }) },
  { name: 'groups as a string', reason: 'invalid_claim', text: /"groups" claim is a string .*must be an array of strings/, make: (c) => c.token('svc-reporting', { claims: { groups: 'db-readers' } }) },
  { name: 'groups as an object', reason: 'invalid_claim', text: /"groups" claim is an object .*must be an array of strings/, make: (c) => c.token('svc-reporting', { claims: { groups: { 'db-readers': true } } }) },
  { name: 'scp as a number', reason: 'invalid_claim', text: /"scp" claim is a number/, make: (c) => c.token('svc-reporting', { claims: { scp: 1 } }) },
  { name: 'exp as a string', reason: 'invalid_claim', text: /"exp" claim is a string .*must be a number/, make: (c) => c.token('svc-reporting', { claims: { exp: String(now() + 300) } }) },
  { name: 'a sender-constrained token (cnf.jkt)', reason: 'sender_constrained', text: /bound to a key the agent holds.*must not be used as a bearer password/, make: (c) => c.token('svc-reporting', { claims: { cnf: { jkt: randomBytes(32).toString('base64url') } } }) },
  { name: 'non-JWT garbage', reason: 'malformed', text: /not a usable access token/, make: async () => randomBytes(300).toString('base64') },
  { name: 'a word, not a token', reason: 'malformed', text: /three base64url parts separated by dots/, make: async () => 'hunter2-not-a-token' },
  { name: 'an encrypted token (JWE)', reason: 'malformed', text: /JWE/, make: async () => ['a', 'b', 'c', 'd', 'e'].map((p) => b64url({ p })).join('.') },
  { name: 'an empty password', reason: 'no_token', text: /no access token: put your Okta access token where the password goes/, make: async () => '' },
];

/** The attacker's tools for a gateway on `issuer`: stop() when done. */
export async function makeCtx(issuer: DevIssuer, token: Ctx['token'], other: DevIssuer): Promise<Ctx & { stop(): Promise<void> }> {
  const attacker = await attackerKey();
  const recorder = await startRecorder({ keys: [attacker.publicJwk] });
  return {
    issuer, token, attacker, other, recorder,
    good: async () => claimsOf(await token()),
    realKid: () => (issuer.publicJwks().keys[0] as { kid: string }).kid,
    stop: () => recorder.stop(),
  };
}
