/**
 * An embedded development OIDC issuer shaped like an Okta custom authorization server, for
 * `tokengate demo` and the tests. Loopback only; keys live in memory; client-credentials only,
 * with client_secret_basic, client_secret_post and private_key_jwt client authentication.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createLocalJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK } from 'jose';
import { isLoopbackHost } from '../identity/secureUrl';

export interface DevClient {
  clientId: string;
  /** client_secret_basic / client_secret_post. A client has a secret or public keys (or both). */
  clientSecret?: string;
  /** Public keys for private_key_jwt client assertions (as registered with an Okta service app). */
  jwks?: JWK[];
  groups: string[];
  scopes: string[];
}

export interface DevIssuerOptions {
  /** Default 127.0.0.1; must be a loopback address. */
  host?: string;
  /** 0 = any free port. */
  port?: number;
  audience: string;
  clients: DevClient[];
  /** Default 300. */
  tokenLifetimeSec?: number;
  /** Which discovery documents are served (default both), to exercise the fallback. */
  discoveryDocuments?: ('openid-configuration' | 'oauth-authorization-server')[];
  /** Fields merged into the discovery documents (e.g. a wrong issuer), for negative tests. */
  metadataOverrides?: Record<string, unknown>;
  /**
   * Serve `{issuer}/v1/demo/expired-token`: the token endpoint's twin that issues an already
   * expired token, so `tokengate demo` can show a rejection. Off unless asked for.
   */
  expiredTokenEndpoint?: boolean;
}

export interface MintOptions {
  clientId?: string;
  claims?: Record<string, unknown>;
  header?: Record<string, unknown>;
  expiresInSec?: number;
  notBeforeSec?: number;
  issuedAtSec?: number;
  kid?: string;
  omit?: string[];
  /** Header extensions the signer lets through in `crit` (to mint tokens with critical extensions). */
  crit?: Record<string, boolean>;
}

/** How an unavailable issuer misbehaves: HTTP 503, reset connections, or never answer. */
export type OutageMode = '503' | 'drop' | 'hang';

export interface DevIssuer {
  /** http://127.0.0.1:PORT/oauth2/default */
  issuer: string;
  /** {issuer}/v1/keys */
  jwksUri: string;
  /** {issuer}/v1/token */
  tokenEndpoint: string;
  /** {issuer}/v1/demo/expired-token when expiredTokenEndpoint is on. */
  expiredTokenEndpoint?: string;
  /** An Okta-shaped access token: header {alg:RS256,kid}; claims ver, jti, iss, aud, iat, exp, cid, sub, scp, groups. */
  mintToken(o?: MintOptions): Promise<string>;
  /** A new signing key (new kid) published in the JWKS; the old one stays published only with keepOld. */
  rotateKeys(o?: { keepOld?: boolean }): Promise<void>;
  publicJwks(): { keys: object[] };
  /** Requests seen for a path: a full URL, an absolute path, or a path relative to the issuer ("v1/keys"). */
  requestCount(path: string): number;
  setAvailable(up: boolean, mode?: OutageMode): void;
  stop(): Promise<void>;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

const ISSUER_PATH = '/oauth2/default';
const MAX_FORM_BYTES = 64 * 1024;
const EXPIRED_TOKEN_PATH = '/v1/demo/expired-token';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Okta refuses client assertions that expire more than an hour ahead. */
const MAX_ASSERTION_LIFETIME_SEC = 3600;
const ASSERTION_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512'];

async function newSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomBytes(12).toString('base64url');
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { kid, privateKey, publicJwk };
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
const secretMatches = (given: string, expected: string): boolean => timingSafeEqual(digest(given), digest(expected));

function sendJson(res: http.ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

function oauthError(res: http.ServerResponse, status: number, error: string, description: string): void {
  sendJson(res, status, { error, error_description: description }, status === 401 ? { 'www-authenticate': 'Basic realm="dev-issuer"' } : {});
}

function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_FORM_BYTES) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

/** client_secret_basic: base64(urlencode(id) ":" urlencode(secret)) per RFC 6749 §2.3.1. */
function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const unform = (s: string): string => {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      return s;
    }
  };
  return { id: unform(decoded.slice(0, colon)), secret: unform(decoded.slice(colon + 1)) };
}

export async function startDevIssuer(o: DevIssuerOptions): Promise<DevIssuer> {
  const host = o.host ?? '127.0.0.1';
  if (!isLoopbackHost(host)) throw new Error(`the development issuer listens on loopback only; host ${host} is not 127.0.0.0/8, ::1 or localhost`);
  if (o.clients.length === 0) throw new Error('the development issuer needs at least one client');
  const unauthenticated = o.clients.find((c) => c.clientSecret === undefined && !c.jwks?.length);
  if (unauthenticated) throw new Error(`development issuer client ${unauthenticated.clientId} needs a clientSecret or jwks (public keys for private_key_jwt)`);
  const lifetimeSec = o.tokenLifetimeSec ?? 300;
  const documents = new Set(o.discoveryDocuments ?? ['openid-configuration', 'oauth-authorization-server']);
  const clients = new Map(o.clients.map((c) => [c.clientId, c]));

  let current = await newSigningKey();
  let published: SigningKey[] = [current];
  let outage: OutageMode | undefined;
  const counts = new Map<string, number>();
  const sockets = new Set<Socket>();
  let issuer = '';

  const metadata = (): Record<string, unknown> => ({
    issuer,
    authorization_endpoint: `${issuer}/v1/authorize`,
    token_endpoint: `${issuer}/v1/token`,
    jwks_uri: `${issuer}/v1/keys`,
    response_types_supported: ['code'],
    grant_types_supported: ['client_credentials'],
    subject_types_supported: ['public'],
    scopes_supported: [...new Set(o.clients.flatMap((c) => c.scopes))],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGORITHMS,
    id_token_signing_alg_values_supported: ['RS256'],
    ...o.metadataOverrides,
  });

  const mintToken = async (m: MintOptions = {}): Promise<string> => {
    const clientId = m.clientId ?? o.clients[0].clientId;
    const client = clients.get(clientId); // an unknown id mints a token with no scopes or groups
    const now = Math.floor(Date.now() / 1000);
    const iat = m.issuedAtSec ?? now;
    const claims: Record<string, unknown> = {
      ver: 1,
      jti: `AT.${randomBytes(18).toString('base64url')}`,
      iss: issuer,
      aud: o.audience,
      iat,
      exp: now + (m.expiresInSec ?? lifetimeSec),
      cid: clientId,
      sub: clientId,
      scp: client ? [...client.scopes] : [],
      groups: client ? [...client.groups] : [],
      ...(m.notBeforeSec !== undefined ? { nbf: m.notBeforeSec } : {}),
      ...m.claims,
    };
    for (const name of m.omit ?? []) delete claims[name];
    const header = { alg: 'RS256', kid: m.kid ?? current.kid, ...m.header };
    return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(current.privateKey, m.crit ? { crit: m.crit } : undefined);
  };

  /** jti values of accepted client assertions, until they expire: a replayed assertion is refused. */
  const seenAssertions = new Map<string, number>();

  /** private_key_jwt: the assertion must be signed by one of the client's keys, iss = sub = client id, aud = the token URL. */
  const assertionClient = async (form: URLSearchParams, endpoint: string): Promise<DevClient | string> => {
    const assertion = form.get('client_assertion') ?? '';
    if (form.get('client_assertion_type') !== JWT_BEARER) return `client_assertion_type must be ${JWT_BEARER}`;
    let claimedId: unknown;
    try {
      claimedId = decodeJwt(assertion).iss;
    } catch {
      return 'The client_assertion is not a JWT.';
    }
    const formId = form.get('client_id');
    if (typeof claimedId !== 'string' || (formId !== null && formId !== claimedId)) return 'The client_assertion iss does not name the client.';
    const client = clients.get(claimedId);
    if (!client?.jwks?.length) return 'The client is not configured for private_key_jwt.';
    const now = Math.floor(Date.now() / 1000);
    let jti: unknown;
    let exp: number;
    try {
      const { payload } = await jwtVerify(assertion, createLocalJWKSet({ keys: client.jwks }), {
        issuer: client.clientId, subject: client.clientId, audience: endpoint, algorithms: ASSERTION_ALGORITHMS, requiredClaims: ['exp', 'jti'],
      });
      jti = payload.jti;
      exp = payload.exp as number;
    } catch (err) {
      return `The client_assertion is invalid: ${(err as Error).message}`;
    }
    if (exp - now > MAX_ASSERTION_LIFETIME_SEC) return `The client_assertion expires more than ${MAX_ASSERTION_LIFETIME_SEC} seconds from now.`;
    for (const [id, until] of seenAssertions) if (until < now) seenAssertions.delete(id);
    const replayKey = `${client.clientId}\u0000${String(jti)}`;
    if (seenAssertions.has(replayKey)) return 'The client_assertion jti has already been used.';
    seenAssertions.set(replayKey, exp);
    return client;
  };

  /** The authenticated client, or an OAuth error already sent. */
  const authenticate = async (req: http.IncomingMessage, res: http.ServerResponse, form: URLSearchParams): Promise<DevClient | undefined> => {
    if (form.has('client_assertion') || form.has('client_assertion_type')) {
      const result = await assertionClient(form, `${issuer}${new URL(req.url ?? '/', 'http://x').pathname.slice(ISSUER_PATH.length)}`);
      if (typeof result === 'string') {
        oauthError(res, 401, 'invalid_client', result);
        return undefined;
      }
      return result;
    }
    const basic = basicCredentials(req.headers.authorization);
    const id = basic?.id ?? form.get('client_id') ?? undefined;
    const secret = basic?.secret ?? form.get('client_secret') ?? undefined;
    if (!id || secret === undefined) {
      oauthError(res, 401, 'invalid_client', 'Client authentication failed. Either the client or the client credentials are invalid.');
      return undefined;
    }
    const client = clients.get(id);
    if (!client || client.clientSecret === undefined || !secretMatches(secret, client.clientSecret)) {
      oauthError(res, 401, 'invalid_client', 'The client secret supplied for a confidential client is invalid.');
      return undefined;
    }
    return client;
  };

  /** The token endpoint (and, when enabled, its expired-token twin). */
  const handleToken = async (req: http.IncomingMessage, res: http.ServerResponse, expired: boolean): Promise<void> => {
    if (req.method !== 'POST') return oauthError(res, 405, 'invalid_request', 'use POST for the token endpoint');
    let form: URLSearchParams;
    try {
      form = await readForm(req);
    } catch {
      return oauthError(res, 400, 'invalid_request', `the request body exceeds ${MAX_FORM_BYTES} bytes`);
    }
    const client = await authenticate(req, res, form);
    if (!client) return;
    const grant = form.get('grant_type');
    if (grant !== 'client_credentials') {
      return oauthError(res, 400, 'unsupported_grant_type', `The authorization grant type is not supported by the authorization server. Configured grant types: [client_credentials].`);
    }
    const requested = (form.get('scope') ?? '').split(' ').filter(Boolean);
    const unknown = requested.filter((s) => !client.scopes.includes(s));
    if (unknown.length > 0) return oauthError(res, 400, 'invalid_scope', `One or more scopes are not configured for the authorization server resource. (${unknown.join(' ')})`);
    const scopes = requested.length > 0 ? requested : client.scopes;
    // An expired token looks exactly like a real one that outlived its lifetime (plus a minute).
    const timing = expired ? { issuedAtSec: Math.floor(Date.now() / 1000) - lifetimeSec - 60, expiresInSec: -60 } : {};
    // audience=... (as IdPs that pick the audience per request take it; Okta ignores it): a token
    // for that audience, so a wrong-audience refusal can be tried.
    const audience = form.get('audience');
    const claims = { scp: scopes, ...(audience ? { aud: audience } : {}) };
    const token = await mintToken({ clientId: client.clientId, claims, ...timing });
    sendJson(res, 200, { token_type: 'Bearer', expires_in: expired ? 0 : lifetimeSec, access_token: token, scope: scopes.join(' ') });
  };

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    if (outage === 'hang') return; // closed by stop() or when the client gives up
    if (outage === 'drop') {
      req.socket.destroy();
      return;
    }
    if (outage === '503') return sendJson(res, 503, { errorCode: 'E0000009', errorSummary: 'Service unavailable (dev issuer outage)' });
    if (!path.startsWith(`${ISSUER_PATH}/`)) return sendJson(res, 404, { errorCode: 'E0000022', errorSummary: 'The endpoint does not exist.' });
    const sub = path.slice(ISSUER_PATH.length);
    const wellKnown = /^\/\.well-known\/(openid-configuration|oauth-authorization-server)$/.exec(sub);
    if (wellKnown && documents.has(wellKnown[1] as 'openid-configuration')) return sendJson(res, 200, metadata());
    if (sub === '/v1/keys') return sendJson(res, 200, { keys: published.map((k) => k.publicJwk) });
    if (sub === '/v1/token' || (sub === EXPIRED_TOKEN_PATH && o.expiredTokenEndpoint)) {
      handleToken(req, res, sub === EXPIRED_TOKEN_PATH).catch(() => oauthError(res, 500, 'server_error', 'the development issuer failed to issue a token'));
      return;
    }
    sendJson(res, 404, { errorCode: 'E0000022', errorSummary: 'The endpoint does not exist.' });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const hostPart = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  issuer = `http://${hostPart}:${addr.port}${ISSUER_PATH}`;

  const pathOf = (p: string): string => {
    if (/^https?:\/\//.test(p)) return new URL(p).pathname;
    if (p.startsWith('/')) return p;
    return `${ISSUER_PATH}/${p}`;
  };

  return {
    issuer,
    jwksUri: `${issuer}/v1/keys`,
    tokenEndpoint: `${issuer}/v1/token`,
    expiredTokenEndpoint: o.expiredTokenEndpoint ? `${issuer}${EXPIRED_TOKEN_PATH}` : undefined,
    mintToken,
    async rotateKeys({ keepOld = false } = {}) {
      current = await newSigningKey();
      published = keepOld ? [current, ...published] : [current];
    },
    publicJwks: () => ({ keys: published.map((k) => ({ ...k.publicJwk })) }),
    requestCount: (p) => counts.get(pathOf(p)) ?? 0,
    setAvailable(up, mode = '503') {
      outage = up ? undefined : mode;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
