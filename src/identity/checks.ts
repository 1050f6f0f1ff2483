/**
 * The individual checks on an access token's header and claims. Pure: values in, results out.
 * A failed check carries the reject reason and a message for the agent (what was wrong, what
 * was expected, how to fix it). Messages quote claim values (truncated) but never the token.
 */
import type { OidcConfig } from '../config/schema';
import type { Identity, TokenRejectReason } from './types';

export interface CheckResult {
  name: string;
  ok: boolean;
  /** When ok: what was checked. When not: the agent-facing message. */
  detail: string;
  reason?: TokenRejectReason;
}

type Claims = Record<string, unknown>;

const pass = (name: string, detail: string): CheckResult => ({ name, ok: true, detail });
const fail = (name: string, reason: TokenRejectReason, detail: string): CheckResult => ({ name, ok: false, detail, reason });

/** Quote an untrusted value for a message, bounded so a huge claim cannot bloat logs. */
export function quote(value: unknown, max = 120): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** "2026-11-28T10:20:00Z" for a NumericDate (seconds). */
export function isoSeconds(sec: number): string {
  const d = new Date(sec * 1000);
  return Number.isNaN(d.getTime()) ? String(sec) : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const seconds = (ms: number): string => `${Math.round(ms / 1000)}s`;

function isNumericDate(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

// --- header ---------------------------------------------------------------------------------

/** HMAC algorithms are never allowed: the verification "key" would be the IdP's public key. */
export function allowedAlgorithms(configured: string[]): string[] {
  return configured.filter((a) => a !== 'none' && !/^HS/i.test(a));
}

export function checkAlgorithm(header: Claims, allowed: string[]): CheckResult {
  const alg = header.alg;
  const expected = `expected one of ${allowed.join(', ')}`;
  if (typeof alg !== 'string' || alg === '') return fail('algorithm', 'malformed', `the token header has no "alg"; ${expected}`);
  if (alg.toLowerCase() === 'none') {
    return fail('algorithm', 'algorithm_not_allowed', `the token is unsigned (alg "none"); only signed tokens are accepted (${expected}). Request a token from your issuer`);
  }
  if (/^HS/i.test(alg)) {
    return fail('algorithm', 'algorithm_not_allowed', `the token is signed with the shared-secret algorithm ${quote(alg, 20)}, which the gateway never accepts (${expected}). Request an access token from your issuer's custom authorization server`);
  }
  if (!allowed.includes(alg)) {
    return fail('algorithm', 'algorithm_not_allowed', `the token is signed with ${quote(alg, 20)}, which is not allowed here (${expected}; operators can change oidc.algorithms)`);
  }
  return pass('algorithm', `alg ${alg} is allowed`);
}

const ACCEPTED_TYPES = ['at+jwt', 'application/at+jwt', 'jwt'];

/** Okta sends no `typ`; RFC 9068 issuers send at+jwt. Anything else (e.g. an ID token type) is refused. */
export function checkType(header: Claims): CheckResult {
  const typ = header.typ;
  if (typ === undefined) return pass('type', 'no typ header (as Okta issues access tokens)');
  if (typeof typ === 'string' && ACCEPTED_TYPES.includes(typ.toLowerCase())) return pass('type', `typ ${typ} is an access-token type`);
  return fail('type', 'malformed', `the token type ${quote(typ, 40)} is not an access token (expected no typ, at+jwt or JWT); send an access token, not an ID or other token`);
}

/** Header parameters that bring their own key, or a URL to fetch one from: attacker-controlled by construction. */
const KEY_HEADERS = ['jwk', 'x5c', 'jku', 'x5u'] as const;

/**
 * Keys come only from the issuer's JWKS: a token that carries a key (jwk, x5c) or points at one
 * (jku, x5u) is refused without looking at it, and nothing it names is fetched. `crit` lists
 * extensions the verifier must understand (RFC 7515 §4.1.11); the gateway implements none.
 */
export function checkHeaderParameters(header: Claims, issuer: string): CheckResult {
  const present = KEY_HEADERS.filter((k) => header[k] !== undefined);
  if (present.length > 0) {
    return fail('header', 'key_in_header',
      `the token header carries ${present.map((k) => `"${k}"`).join(', ')}: a key or key location chosen by whoever made the token; the gateway takes signing keys only from the JWKS of ${issuer} and never fetches a URL from a token. Request an access token from ${issuer}`);
  }
  if (header.crit !== undefined) {
    return fail('header', 'unsupported_critical_header',
      `the token header marks extensions as critical (crit ${quote(header.crit, 60)}), which the gateway does not implement, so it must refuse the token; request a plain access token from ${issuer}`);
  }
  return pass('header', 'no embedded keys, key URLs or critical extensions');
}

// --- claims ---------------------------------------------------------------------------------

type ClaimType = 'string' | 'number' | 'string[]' | 'string or string[]';

function hasType(v: unknown, t: ClaimType): boolean {
  const isStrings = (x: unknown): boolean => Array.isArray(x) && x.every((e) => typeof e === 'string');
  switch (t) {
    case 'string': return typeof v === 'string';
    case 'number': return isNumericDate(v);
    case 'string[]': return isStrings(v);
    case 'string or string[]': return typeof v === 'string' || isStrings(v);
  }
}

const TYPE_WORDS: Record<ClaimType, string> = {
  string: 'a string',
  number: 'a number (seconds since the epoch)',
  'string[]': 'an array of strings',
  'string or string[]': 'a string or an array of strings',
};

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return v.every((e) => typeof e === 'string') ? 'an array of strings' : 'an array with non-string values';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/**
 * Every claim the gateway reads must have the JSON type the specs give it; a value of another
 * type is refused, naming the claim, rather than read leniently (a groups string is not a list
 * of groups, a numeric scp is not a scope). Absent claims are left to the checks that need them.
 */
export function checkClaimTypes(claims: Claims, groupsClaim: string): CheckResult {
  const expected: [string, ClaimType][] = [
    ['iss', 'string'], ['sub', 'string'], ['aud', 'string or string[]'],
    ['exp', 'number'], ['nbf', 'number'], ['iat', 'number'],
    ['jti', 'string'], ['cid', 'string'], ['client_id', 'string'], ['azp', 'string'], ['uid', 'string'],
    // Okta sends scp as an array; some issuers (Entra ID) as a space-separated string.
    ['scp', 'string or string[]'], ['scope', 'string'],
    [groupsClaim, 'string[]'],
  ];
  for (const [name, type] of expected) {
    const v = claims[name];
    if (v === undefined || hasType(v, type)) continue;
    return fail('claim-types', 'invalid_claim',
      `the token's "${quote(name, 40)}" claim is ${jsonType(v)} (${quote(JSON.stringify(v) ?? String(v), 40)}), but it must be ${TYPE_WORDS[type]}; the issuer's claim mapping is wrong: ask your Okta admin to fix the "${quote(name, 40)}" claim of the authorization server`);
  }
  return pass('claim-types', 'every claim the gateway reads has its expected type');
}

/**
 * A sender-constrained token (RFC 7800 `cnf`: DPoP's jkt, mTLS's x5t#S256) is valid only with a
 * proof of a key the agent holds. The database protocols cannot carry that proof, so accepting
 * it as a bearer password would drop the very binding its issuer asked for.
 */
export function checkNotSenderConstrained(claims: Claims): CheckResult {
  const cnf = claims.cnf;
  if (cnf === undefined) return pass('sender-constraint', 'a bearer token (no cnf claim)');
  const bound = cnf !== null && typeof cnf === 'object' ? Object.keys(cnf).map((k) => quote(k, 20)).join(', ') : quote(cnf, 20);
  return fail('sender-constraint', 'sender_constrained',
    `the token is sender-constrained (cnf ${bound}): it is bound to a key the agent holds and is valid only with a proof of that key (DPoP or mutual TLS), which the PostgreSQL and MySQL protocols cannot carry, so it must not be used as a bearer password; request a plain bearer access token (without DPoP) for this gateway's audience`);
}

export function checkIssuer(claims: Claims, issuer: string): CheckResult {
  const iss = claims.iss;
  if (iss === undefined) return fail('issuer', 'missing_claim', `the token has no "iss" claim; expected ${issuer}`);
  if (iss !== issuer) {
    // Only a trailing slash apart: the same issuer, so a fresh token would not help; the gateway's config must change.
    if (typeof iss === 'string' && iss.replace(/\/+$/, '') === issuer.replace(/\/+$/, '')) {
      return fail('issuer', 'bad_issuer', `the token was issued by ${quote(iss)}, but this gateway's oidc.issuer is ${issuer}; they differ only in the trailing slash, so a new token will not help: the gateway operator must set oidc.issuer to ${quote(iss)} exactly`);
    }
    return fail('issuer', 'bad_issuer', `the token was issued by ${quote(iss)}, but this gateway accepts tokens only from ${issuer}; request a token from ${issuer}`);
  }
  return pass('issuer', `iss is ${issuer}`);
}

export function checkAudience(claims: Claims, audiences: string[]): CheckResult {
  const aud = claims.aud;
  if (aud === undefined) return fail('audience', 'missing_claim', `the token has no "aud" claim; expected ${audiences.join(' or ')}`);
  const list = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [];
  if (list.some((a) => audiences.includes(a))) return pass('audience', `aud includes ${list.find((a) => audiences.includes(a))}`);
  const expected = audiences.length === 1 ? `the expected audience ${audiences[0]}` : `any of the expected audiences ${audiences.join(', ')}`;
  return fail(
    'audience',
    'bad_audience',
    `token audience [${quote(list.join(', '))}] does not include ${expected}; request a token from the authorization server whose audience is ${audiences.join(' or ')}`,
  );
}

export function checkExpiry(claims: Claims, nowMs: number, skewMs: number): CheckResult {
  const exp = claims.exp;
  if (exp === undefined) return fail('expiry', 'missing_claim', 'the token has no "exp" claim; tokens without an expiry are refused. Request an access token from your issuer');
  if (!isNumericDate(exp)) return fail('expiry', 'malformed', `the token's "exp" claim is ${quote(exp, 40)}, not a number of seconds since the epoch`);
  if (nowMs >= exp * 1000 + skewMs) {
    return fail('expiry', 'expired', `the access token expired at ${isoSeconds(exp)} (clock skew allowed: ${seconds(skewMs)}); fetch a new token from your issuer and reconnect`);
  }
  return pass('expiry', `expires at ${isoSeconds(exp)}`);
}

export function checkNotBefore(claims: Claims, nowMs: number, skewMs: number): CheckResult {
  const nbf = claims.nbf;
  if (nbf === undefined) return pass('not-before', 'no nbf claim');
  if (!isNumericDate(nbf)) return fail('not-before', 'malformed', `the token's "nbf" claim is ${quote(nbf, 40)}, not a number of seconds since the epoch`);
  if (nowMs + skewMs < nbf * 1000) {
    return fail('not-before', 'not_yet_valid', `the access token is not valid before ${isoSeconds(nbf)} (clock skew allowed: ${seconds(skewMs)}); wait until then or check the clocks of the issuer and this host`);
  }
  return pass('not-before', `valid since ${isoSeconds(nbf)}`);
}

export function checkIssuedAt(claims: Claims, nowMs: number, skewMs: number): CheckResult {
  const iat = claims.iat;
  if (iat === undefined) return pass('issued-at', 'no iat claim');
  if (!isNumericDate(iat)) return fail('issued-at', 'malformed', `the token's "iat" claim is ${quote(iat, 40)}, not a number of seconds since the epoch`);
  if (iat * 1000 > nowMs + skewMs) {
    return fail('issued-at', 'issued_in_future', `the access token claims to be issued at ${isoSeconds(iat)}, in the future (clock skew allowed: ${seconds(skewMs)}); check the clocks of the issuer and this host`);
  }
  return pass('issued-at', `issued at ${isoSeconds(iat)}`);
}

export function checkLifetime(claims: Claims, maxLifetimeMs: number | undefined): CheckResult {
  if (maxLifetimeMs === undefined) return pass('lifetime', 'no maximum lifetime configured');
  const { iat, exp } = claims;
  if (iat === undefined) {
    return fail('lifetime', 'missing_claim', `the token has no "iat" claim, so its lifetime cannot be checked against the ${seconds(maxLifetimeMs)} maximum; request an access token from your issuer`);
  }
  if (!isNumericDate(iat) || !isNumericDate(exp)) return fail('lifetime', 'malformed', 'the token\'s "iat"/"exp" claims are not numbers of seconds since the epoch');
  const lifetimeMs = (exp - iat) * 1000;
  if (lifetimeMs > maxLifetimeMs) {
    return fail(
      'lifetime',
      'lifetime_too_long',
      `the access token is valid for ${seconds(lifetimeMs)} (iat ${isoSeconds(iat)} to exp ${isoSeconds(exp)}), longer than the ${seconds(maxLifetimeMs)} this gateway accepts; ask your Okta admin to shorten the access-token lifetime in the authorization server's policy`,
    );
  }
  return pass('lifetime', `lifetime ${seconds(lifetimeMs)} within ${seconds(maxLifetimeMs)}`);
}

export function checkSubject(claims: Claims): CheckResult {
  if (typeof claims.sub !== 'string' || claims.sub === '') return fail('subject', 'missing_claim', 'the token has no "sub" claim (or it is empty); request an access token from your issuer');
  return pass('subject', `sub ${quote(claims.sub)}`);
}

/** Scopes from Okta's `scp` array or the RFC 9068 space-separated `scope` string. */
export function scopesOf(claims: Claims): string[] {
  if (Array.isArray(claims.scp)) return claims.scp.filter((s): s is string => typeof s === 'string');
  if (typeof claims.scp === 'string') return claims.scp.split(' ').filter(Boolean);
  if (typeof claims.scope === 'string') return claims.scope.split(' ').filter(Boolean);
  return [];
}

export function checkScopes(claims: Claims, required: string[]): CheckResult {
  if (required.length === 0) return pass('scopes', 'no scopes required');
  const have = scopesOf(claims);
  const missing = required.filter((s) => !have.includes(s));
  if (missing.length > 0) {
    return fail(
      'scopes',
      'missing_scope',
      `the token lacks the required scope${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (it has: ${have.length ? quote(have.join(' ')) : 'none'}); request the token with scope=${required.join(' ')} and make sure your client is allowed those scopes`,
    );
  }
  return pass('scopes', `has ${required.join(', ')}`);
}

/** Values of the groups claim, an array of strings (checkClaimTypes refuses any other type); none when absent. */
export function groupsOf(claims: Claims, claimName: string): string[] {
  const v = claims[claimName];
  return Array.isArray(v) ? v.filter((g): g is string => typeof g === 'string') : [];
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The identity of a token whose checks all passed. */
export function identityFromClaims(claims: Claims, oidc: Pick<OidcConfig, 'groupsClaim' | 'issuer'>): Identity {
  return {
    sub: claims.sub as string,
    clientId: str(claims.cid) ?? str(claims.client_id) ?? str(claims.azp),
    uid: str(claims.uid),
    groups: groupsOf(claims, oidc.groupsClaim),
    scopes: scopesOf(claims),
    jti: str(claims.jti),
    issuer: oidc.issuer,
    expiresAt: claims.exp as number,
    issuedAt: isNumericDate(claims.iat) ? claims.iat : undefined,
  };
}
