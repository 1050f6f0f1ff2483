import { compactVerify, errors } from 'jose';
import type { OidcConfig } from '../config/schema';
import {
  allowedAlgorithms,
  checkAlgorithm,
  checkAudience,
  checkClaimTypes,
  checkHeaderParameters,
  checkNotSenderConstrained,
  checkExpiry,
  checkIssuedAt,
  checkIssuer,
  checkLifetime,
  checkNotBefore,
  checkScopes,
  checkSubject,
  checkType,
  identityFromClaims,
  quote,
  type CheckResult,
} from './checks';
import { decodeCompactJws } from './compactJws';
import { IdpUnavailableError, IssuerKeys } from './keys';
import { TokenCache, tokenDigest } from './tokenCache';
import { MAX_ACCESS_TOKEN_BYTES } from './tokenSize';
import { TokenRejectedError, type Identity, type TokenRejectReason } from './types';

/** What `tokengate verify-token` prints: every check, not just the first failure. */
export interface TokenReport {
  header: { alg?: string; kid?: string; typ?: string };
  claims: Record<string, unknown> | null;
  checks: { name: string; ok: boolean; detail: string }[];
  identity?: Identity;
  error?: { reason: TokenRejectReason; message: string };
}

/** Told of every verification and every JWKS request (the gateway's metrics). */
export interface VerificationObserver {
  /** `result` is ok, a rejection reason, or error (not a verdict on the token); `cached`: no signature check of its own. */
  verification(result: 'ok' | TokenRejectReason | 'error', cached: boolean): void;
  /** One HTTP request for the JWKS; ok when it answered 200. */
  jwksFetch(ok: boolean): void;
}

export interface TokenVerifierOptions {
  /** Clock in ms since the epoch, for tests. */
  now?: () => number;
  /** Verified-token cache size (default 10 000). */
  cacheEntries?: number;
  observer?: VerificationObserver;
}

interface Evaluation {
  header: Record<string, unknown> | null;
  claims: Record<string, unknown> | null;
  checks: CheckResult[];
  failure?: CheckResult;
  identity?: Identity;
}

const stringField = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function deepFreeze(identity: Identity): Identity {
  Object.freeze(identity.groups);
  Object.freeze(identity.scopes);
  return Object.freeze(identity);
}

/**
 * Verifies Okta-style access tokens: structure and header, signature against the issuer's
 * JWKS, then issuer, audience, time, lifetime, subject and scope claims. Successful results
 * are cached by token digest until the token expires.
 */
export class TokenVerifier {
  readonly #oidc: OidcConfig;
  readonly #now: () => number;
  readonly #algorithms: string[];
  readonly #keys: IssuerKeys;
  readonly #cache: TokenCache<Identity>;
  readonly #inflight = new Map<string, Promise<Identity>>();
  #signatureChecks = 0;
  #cacheHits = 0;
  readonly #observer: VerificationObserver | undefined;

  constructor(oidc: OidcConfig, opts: TokenVerifierOptions = {}) {
    this.#oidc = oidc;
    this.#now = opts.now ?? Date.now;
    this.#algorithms = allowedAlgorithms(oidc.algorithms);
    if (this.#algorithms.length === 0) {
      throw new Error(`oidc.algorithms (${oidc.algorithms.join(', ') || 'empty'}) allows no asymmetric algorithm; "none" and HS* are never accepted. Use RS256 for Okta`);
    }
    if (oidc.audience.length === 0) throw new Error('oidc.audience is empty; set it to the audience of your authorization server, e.g. api://tokengate');
    this.#observer = opts.observer;
    this.#keys = new IssuerKeys(oidc, { now: this.#now, onJwksFetch: opts.observer && ((ok) => opts.observer!.jwksFetch(ok)) });
    this.#cache = new TokenCache<Identity>(opts.cacheEntries);
  }

  /** Counters that prove caching works (and feed metrics). */
  get stats(): { signatureChecks: number; cacheHits: number; cachedTokens: number } {
    return { signatureChecks: this.#signatureChecks, cacheHits: this.#cacheHits, cachedTokens: this.#cache.size };
  }

  /** Warm discovery and the JWKS at startup. Never throws; the first verify retries. */
  prefetch(): Promise<void> {
    return this.#keys.prefetch();
  }

  /** Whether the issuer's signing keys are loaded (readiness); `keysFailure` says why not. */
  keysLoaded(): boolean {
    return this.#keys.loaded;
  }

  get keysFailure(): string | undefined {
    return this.#keys.lastFailure;
  }

  /** Returns the token's identity or throws TokenRejectedError. */
  async verify(token: string): Promise<Identity> {
    let cached = false;
    try {
      const found = this.#verify(token);
      cached = found.cached;
      const identity = await found.result;
      this.#observer?.verification('ok', cached);
      return identity;
    } catch (err) {
      this.#observer?.verification(err instanceof TokenRejectedError ? err.reason : 'error', cached);
      throw err;
    }
  }

  /** The identity from the cache, from a verification of the same token in flight, or from a new one (cached: false). */
  #verify(token: string): { result: Promise<Identity>; cached: boolean } {
    if (typeof token !== 'string' || token.length > MAX_ACCESS_TOKEN_BYTES) {
      decodeCompactJws(token); // throws the right 'malformed' error without hashing a huge input
    }
    const digest = tokenDigest(token);
    const hit = this.#cache.get(digest, this.#now());
    if (hit) {
      this.#cacheHits++;
      return { result: Promise.resolve(hit), cached: true };
    }
    const pending = this.#inflight.get(digest);
    if (pending) return { result: pending, cached: true };
    const work = this.#evaluate(token, true)
      .then((result) => {
        if (result.failure || !result.identity) {
          const f = result.failure;
          throw new TokenRejectedError(f?.reason ?? 'malformed', f?.detail ?? 'the token could not be verified');
        }
        const identity = deepFreeze(result.identity);
        this.#cache.set(digest, identity, identity.expiresAt * 1000 + this.#oidc.clockSkewMs);
        return identity;
      })
      .finally(() => this.#inflight.delete(digest));
    this.#inflight.set(digest, work);
    return { result: work, cached: false };
  }

  /** Every check with its outcome; never cached, never throws for a bad token. */
  async inspect(token: string): Promise<TokenReport> {
    const r = await this.#evaluate(token, false);
    return {
      header: { alg: stringField(r.header?.alg), kid: stringField(r.header?.kid), typ: stringField(r.header?.typ) },
      claims: r.claims,
      checks: r.checks.map(({ name, ok, detail }) => ({ name, ok, detail })),
      identity: r.identity,
      error: r.failure ? { reason: r.failure.reason ?? 'malformed', message: r.failure.detail } : undefined,
    };
  }

  async #evaluate(token: string, stopAtFirst: boolean): Promise<Evaluation> {
    const result: Evaluation = { header: null, claims: null, checks: [] };
    const record = (check: CheckResult): boolean => {
      result.checks.push(check);
      if (!check.ok && !result.failure) result.failure = check;
      return !check.ok && stopAtFirst;
    };

    try {
      const decoded = decodeCompactJws(token);
      result.header = decoded.header;
      result.claims = decoded.claims;
    } catch (err) {
      const e = err as TokenRejectedError;
      record({ name: 'format', ok: false, detail: e.message, reason: e.reason ?? 'malformed' });
      return result;
    }
    record({ name: 'format', ok: true, detail: 'compact JWS with a JSON header and payload' });
    const { header } = result;
    let claims = result.claims as Record<string, unknown>;

    const alg = checkAlgorithm(header, this.#algorithms);
    if (record(alg) || record(checkType(header)) || record(checkHeaderParameters(header, this.#oidc.issuer))) return result;
    // The issuer is checked before the signature: a token from another issuer would otherwise
    // show up as an "unknown key" and cost a JWKS refetch.
    if (record(checkIssuer(claims, this.#oidc.issuer))) return result;

    if (alg.ok) {
      const sig = await this.#checkSignature(token, header);
      if (record(sig.check)) return result;
      if (sig.claims) claims = result.claims = sig.claims;
    } else {
      record({ name: 'signature', ok: false, detail: 'not checked: the algorithm is not allowed' });
    }

    const now = this.#now();
    const skew = this.#oidc.clockSkewMs;
    const rest = [
      () => checkClaimTypes(claims, this.#oidc.groupsClaim),
      () => checkNotSenderConstrained(claims),
      () => checkAudience(claims, this.#oidc.audience),
      () => checkExpiry(claims, now, skew),
      () => checkNotBefore(claims, now, skew),
      () => checkIssuedAt(claims, now, skew),
      () => checkLifetime(claims, this.#oidc.maxTokenLifetimeMs),
      () => checkSubject(claims),
      () => checkScopes(claims, this.#oidc.requiredScopes),
    ];
    for (const check of rest) if (record(check())) return result;

    if (!result.failure) result.identity = identityFromClaims(claims, this.#oidc);
    return result;
  }

  async #checkSignature(token: string, header: Record<string, unknown>): Promise<{ check: CheckResult; claims?: Record<string, unknown> }> {
    const name = 'signature';
    const kid = typeof header.kid === 'string' ? `"${quote(header.kid, 60)}"` : '(none)';
    this.#signatureChecks++;
    try {
      const { payload } = await compactVerify(token, this.#keys.getKey, { algorithms: this.#algorithms });
      const claims = JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>;
      return { check: { name, ok: true, detail: `signed by key ${kid} of ${this.#oidc.issuer}` }, claims };
    } catch (err) {
      return { check: { name, ok: false, ...this.#signatureFailure(err, kid) } };
    }
  }

  #signatureFailure(err: unknown, kid: string): { reason: TokenRejectReason; detail: string } {
    const issuer = this.#oidc.issuer;
    if (err instanceof IdpUnavailableError) return { reason: 'idp_unavailable', detail: err.message };
    if (err instanceof errors.JWSSignatureVerificationFailed) {
      return {
        reason: 'bad_signature',
        detail: `the token's signature does not verify with key ${kid} of ${issuer}: it was altered or not issued by ${issuer}; request a fresh token from ${issuer}`,
      };
    }
    if (err instanceof errors.JWKSNoMatchingKey) {
      return {
        reason: 'unknown_key',
        detail: `the token is signed with key id ${kid}, which ${issuer} does not publish (the key set was re-fetched at most once per ${Math.round(this.#oidc.jwksCooldownMs / 1000)}s); request a fresh token from ${issuer}, and if the issuer just rotated its keys, retry shortly`,
      };
    }
    if (err instanceof errors.JWKSMultipleMatchingKeys) {
      return { reason: 'unknown_key', detail: `the token names no key id and ${issuer} publishes several keys, so the signing key cannot be chosen; request a token that carries a "kid" header` };
    }
    if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
      return { reason: 'algorithm_not_allowed', detail: `the token's algorithm cannot be used with ${issuer}'s keys (allowed: ${this.#algorithms.join(', ')}); request a token from ${issuer}` };
    }
    const what = err instanceof errors.JOSEError ? err.code : 'an unexpected error';
    return { reason: 'malformed', detail: `the token could not be verified (${what}); request a fresh access token from ${issuer}` };
  }
}
