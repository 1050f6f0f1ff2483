/**
 * The agent side of OAuth 2.0 client credentials: get an access token from the issuer's token
 * endpoint (Okta: {issuer}/v1/token) with client_secret_basic, client_secret_post or
 * private_key_jwt, and keep it in an optional cache file until shortly before it expires.
 * Used by `tokengate token`; nothing here ever prints a secret, a key or a token.
 */
import { createHash, createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import { chmodSync, closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { SignJWT } from 'jose';
import { readBodyBounded } from '../identity/boundedFetch';
import { discoverIssuer } from '../identity/discovery';
import { requireSecureUrl } from '../identity/secureUrl';

export type ClientAuth =
  | { method: 'client_secret_basic' | 'client_secret_post'; clientSecret: string }
  | { method: 'private_key_jwt'; key: ClientSigningKey };

/** A private key for private_key_jwt, with the JWS algorithm it signs with. */
export interface ClientSigningKey {
  key: KeyObject;
  algorithm: string;
  keyId?: string;
}

export interface ClientCredentialsRequest {
  tokenEndpoint: string;
  clientId: string;
  auth: ClientAuth;
  /** Sent space-separated as `scope`; Okta requires at least one custom scope. */
  scopes: string[];
  /** Extra form fields some IdPs need (`audience` for Auth0, `resource` per RFC 8707). */
  extraParams?: Record<string, string>;
  timeoutMs: number;
}

export interface IssuedToken {
  accessToken: string;
  /** Seconds since the epoch; undefined when the IdP gave neither expires_in nor a JWT exp. */
  expiresAt?: number;
}

/** The IdP refused, or could not be asked. Fields are the IdP's own words, never a secret. */
export class TokenRequestError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly error?: string,
    readonly errorDescription?: string,
  ) {
    super(message);
    this.name = 'TokenRequestError';
  }
}

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Okta accepts client assertions that expire within an hour; a few minutes is plenty. */
const ASSERTION_LIFETIME_SEC = 300;
const MAX_TOKEN_RESPONSE_BYTES = 256 * 1024;

/** The token endpoint from the issuer's discovery document (Okta: {issuer}/v1/token). */
export async function tokenEndpointFor(issuer: string, timeoutMs: number): Promise<string> {
  const meta = await discoverIssuer(issuer, timeoutMs);
  if (!meta.tokenEndpoint) {
    throw new TokenRequestError(`the metadata at ${meta.source} has no token_endpoint; is ${issuer} an authorization server that supports the client credentials grant?`);
  }
  requireSecureUrl(meta.tokenEndpoint, `token endpoint advertised by ${meta.source}`);
  return meta.tokenEndpoint;
}

/** application/x-www-form-urlencoded encoding of one value (RFC 6749 appendix B). */
const formEncode = (v: string): string => new URLSearchParams({ v }).toString().slice(2);

/** What a hint to the operator should add to each OAuth error code. */
const ERROR_HINTS: Record<string, string> = {
  invalid_client: 'check the client id, its secret or key, and that the app is set to this client authentication method (--auth, --private-key)',
  unauthorized_client: 'enable the Client Credentials grant type on this app',
  invalid_scope: 'request scopes that exist on the authorization server and that its access policy grants to this app (--scope)',
  unsupported_grant_type: 'the authorization server does not allow client credentials; use a custom authorization server (/oauth2/<id>)',
  access_denied: "no access policy rule of the authorization server allows this app; add the app to a policy's rule",
};

/** Decode a JWT payload without verifying it (we only want `exp` of our own fresh token). */
function jwtExp(token: string): number | undefined {
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

/** A private_key_jwt client assertion: iss = sub = client id, aud = the token endpoint, short exp, unique jti. */
export async function clientAssertion(clientId: string, tokenEndpoint: string, key: ClientSigningKey, nowSec = Math.floor(Date.now() / 1000)): Promise<string> {
  const header: { alg: string; kid?: string; typ: string } = { alg: key.algorithm, typ: 'JWT' };
  if (key.keyId) header.kid = key.keyId;
  return new SignJWT({})
    .setProtectedHeader(header)
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(tokenEndpoint)
    .setIssuedAt(nowSec)
    .setExpirationTime(nowSec + ASSERTION_LIFETIME_SEC)
    .setJti(randomUUID())
    .sign(key.key);
}

/** POST grant_type=client_credentials and return the access token. */
export async function requestClientCredentialsToken(r: ClientCredentialsRequest): Promise<IssuedToken> {
  requireSecureUrl(r.tokenEndpoint, 'token endpoint');
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (r.scopes.length > 0) form.set('scope', r.scopes.join(' '));
  for (const [k, v] of Object.entries(r.extraParams ?? {})) form.set(k, v);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  const secrets: string[] = [];
  const auth = r.auth;
  if (auth.method === 'private_key_jwt') {
    form.set('client_id', r.clientId);
    form.set('client_assertion_type', JWT_BEARER);
    form.set('client_assertion', await clientAssertion(r.clientId, r.tokenEndpoint, auth.key));
  } else if (auth.method === 'client_secret_basic') {
    secrets.push(auth.clientSecret);
    headers.authorization = `Basic ${Buffer.from(`${formEncode(r.clientId)}:${formEncode(auth.clientSecret)}`).toString('base64')}`;
  } else {
    secrets.push(auth.clientSecret);
    form.set('client_id', r.clientId);
    form.set('client_secret', auth.clientSecret);
  }

  let res: Response;
  try {
    res = await fetch(r.tokenEndpoint, { method: 'POST', headers, body: form.toString(), redirect: 'manual', signal: AbortSignal.timeout(r.timeoutMs) });
  } catch (err) {
    const e = err as { name?: string; message?: string; cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${r.timeoutMs} ms` : `${e.message ?? String(err)}${e.cause?.code ? ` (${e.cause.code})` : ''}`;
    throw new TokenRequestError(`could not reach the token endpoint ${r.tokenEndpoint}: ${why}`);
  }
  const text = (await readBodyBounded(res, r.tokenEndpoint, MAX_TOKEN_RESPONSE_BYTES)).toString('utf8');
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
  } catch {
    // Not JSON (a proxy error page, say): reported by status below.
  }
  // An IdP could echo what it was sent; a secret must not reach the terminal through it.
  const clean = (v: unknown): string | undefined => (typeof v === 'string' ? secrets.reduce((s, x) => (x ? s.split(x).join('[redacted]') : s), v) : undefined);

  if (res.status !== 200) {
    const error = clean(body.error) ?? clean(body.errorCode);
    const description = clean(body.error_description) ?? clean(body.errorSummary);
    const hint = error ? ERROR_HINTS[error] : undefined;
    const what = [error, description].filter(Boolean).join(': ') || (res.status >= 300 && res.status < 400 ? `a redirect to ${res.headers.get('location') ?? '?'} (is this the token endpoint?)` : 'no OAuth error in the response');
    throw new TokenRequestError(`the token endpoint ${r.tokenEndpoint} answered HTTP ${res.status}: ${what}${hint ? `; ${hint}` : ''}`, res.status, error, description);
  }
  const accessToken = body.access_token;
  if (typeof accessToken !== 'string' || accessToken === '') {
    throw new TokenRequestError(`the token endpoint ${r.tokenEndpoint} answered HTTP 200 without an access_token; is it an OAuth 2.0 token endpoint?`, 200);
  }
  const expiresIn = typeof body.expires_in === 'number' ? body.expires_in : Number(body.expires_in);
  const expiresAt = Number.isFinite(expiresIn) ? Math.floor(Date.now() / 1000) + expiresIn : jwtExp(accessToken);
  return { accessToken, expiresAt };
}

/** The JWS algorithm a key signs with: the JWK's `alg` if given, else from its type and curve. */
function algorithmFor(key: KeyObject, jwkAlg: unknown): string {
  if (typeof jwkAlg === 'string' && jwkAlg !== '') return jwkAlg;
  const type = key.asymmetricKeyType;
  if (type === 'rsa') return 'RS256';
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const alg = ({ prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' } as Record<string, string>)[curve ?? ''];
    if (alg) return alg;
    throw new Error(`EC curve ${curve ?? 'unknown'} is not usable for a client assertion; use P-256, P-384 or P-521`);
  }
  if (type === 'ed25519') return 'EdDSA';
  throw new Error(`a ${type ?? 'symmetric'} key cannot sign a client assertion; use an RSA (RS256) or EC (ES256) private key`);
}

/**
 * A private key from a PEM file (PKCS#8, PKCS#1 or SEC1) or a JWK (JSON, with the private
 * part `d`). `source` names the file in errors; the key material never appears in one.
 */
export function parsePrivateKey(text: string, source: string, keyId?: string): ClientSigningKey {
  const trimmed = text.trim();
  let key: KeyObject;
  let jwkAlg: unknown;
  let jwkKid: unknown;
  if (trimmed.startsWith('{')) {
    let jwk: Record<string, unknown>;
    try {
      jwk = JSON.parse(trimmed) as Record<string, unknown>;
    } catch {
      throw new Error(`${source} starts with "{" but is not valid JSON; expected a private JWK or a PEM private key`);
    }
    if (typeof jwk.d !== 'string') throw new Error(`${source} is a public JWK (no "d"); the agent needs the private key, Okta gets the public one`);
    try {
      key = createPrivateKey({ key: jwk as never, format: 'jwk' });
    } catch (err) {
      throw new Error(`${source} is not a usable private JWK: ${(err as Error).message}`);
    }
    jwkAlg = jwk.alg;
    jwkKid = jwk.kid;
  } else {
    if (!trimmed.includes('PRIVATE KEY-----')) throw new Error(`${source} is neither a PEM private key (-----BEGIN PRIVATE KEY-----) nor a JWK`);
    try {
      key = createPrivateKey(trimmed);
    } catch (err) {
      throw new Error(`${source} is not a usable PEM private key (an encrypted key needs decrypting first): ${(err as Error).message}`);
    }
  }
  return { key, algorithm: algorithmFor(key, jwkAlg), keyId: keyId ?? (typeof jwkKid === 'string' ? jwkKid : undefined) };
}

/** Read a small file whole through one descriptor (no stat/read race), refusing anything large. */
export function readSmallFile(path: string, what: string, maxBytes = 64 * 1024): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new Error(`cannot read the ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); check the path and its permissions`);
  }
  try {
    const size = fstatSync(fd).size;
    if (size > maxBytes) throw new Error(`the ${what} ${path} is ${size} bytes; expected at most ${maxBytes}`);
    const buf = Buffer.alloc(size);
    let read = 0;
    while (read < size) {
      const n = readSync(fd, buf, read, size - read, read);
      if (n === 0) break;
      read += n;
    }
    return buf.subarray(0, read).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** What a cached token was issued for: a token is reused only for the same request. */
export function tokenCacheKey(parts: { tokenEndpoint: string; clientId: string; scopes: string[]; extraParams?: Record<string, string> }): string {
  const extra = Object.entries(parts.extraParams ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return createHash('sha256').update(JSON.stringify([parts.tokenEndpoint, parts.clientId, [...parts.scopes].sort(), extra])).digest('hex');
}

interface CacheRecord {
  version: 1;
  key: string;
  accessToken: string;
  expiresAt: number;
}

/**
 * One token in a file only its owner can read (mode 0600), reused until `refreshBeforeSec`
 * before it expires. A file readable by others is ignored and replaced: its token may have leaked.
 */
export class TokenFileCache {
  constructor(
    readonly path: string,
    readonly refreshBeforeSec = 60,
    private readonly warn: (msg: string) => void = () => undefined,
  ) {}

  /** The cached token for `key` if it is still good for refreshBeforeSec, else undefined. */
  read(key: string, nowSec = Math.floor(Date.now() / 1000)): string | undefined {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return undefined;
    }
    let text: string;
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || st.size > 64 * 1024) return undefined;
      if (st.mode & 0o077) {
        this.warn(`token cache ${this.path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); ignoring it and writing a new one with mode 600`);
        return undefined;
      }
      const buf = Buffer.alloc(st.size);
      const n = readSync(fd, buf, 0, st.size, 0);
      text = buf.subarray(0, n).toString('utf8');
    } finally {
      closeSync(fd);
    }
    try {
      const rec = JSON.parse(text) as Partial<CacheRecord>;
      if (rec.version !== 1 || rec.key !== key || typeof rec.accessToken !== 'string' || typeof rec.expiresAt !== 'number') return undefined;
      return rec.expiresAt - this.refreshBeforeSec > nowSec ? rec.accessToken : undefined;
    } catch {
      return undefined;
    }
  }

  /** Replace the file atomically; the new file is created 0600 (its directory 0700 if new). */
  write(key: string, token: IssuedToken): void {
    if (token.expiresAt === undefined) return; // unknown lifetime: never reuse
    const record: CacheRecord = { version: 1, key, accessToken: token.accessToken, expiresAt: token.expiresAt };
    const tmp = `${this.path}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`;
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      const fd = openSync(tmp, 'wx', 0o600);
      try {
        writeSync(fd, JSON.stringify(record) + '\n');
      } finally {
        closeSync(fd);
      }
      chmodSync(tmp, 0o600); // in case an ACL widened it
      renameSync(tmp, this.path);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new Error(`cannot write the token cache ${this.path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check that its directory is writable`);
    }
  }
}
