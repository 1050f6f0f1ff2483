import { troubleLog } from '../throttledLog';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors,
  type CryptoKey,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
} from 'jose';
import type { OidcConfig } from '../config/schema';
import { boundedFetch } from './boundedFetch';
import { DiscoveryError, discoverIssuer } from './discovery';
import { requireSecureUrl } from './secureUrl';

type RemoteSet = ReturnType<typeof createRemoteJWKSet>;
type LocalSet = ReturnType<typeof createLocalJWKSet>;

/** The signing keys cannot be obtained: the IdP is down, slow, or its metadata is unusable. */
export class IdpUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdpUnavailableError';
  }
}

class DeadlineError extends Error {}

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError()), ms);
    timer.unref();
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

function describe(err: unknown, timeoutMs: number): string {
  if (err instanceof DeadlineError || err instanceof errors.JWKSTimeout) return `no answer within ${timeoutMs} ms (oidc.fetchTimeoutMs)`;
  const e = err as { message?: string; cause?: { code?: string } };
  const cause = e?.cause?.code ? ` (${e.cause.code})` : '';
  return `${e?.message ?? String(err)}${cause}`;
}

/** Key lookups that mean "this token names a key we do not have", not "the IdP is down". */
function isKeyMismatch(err: unknown): boolean {
  return err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys || err instanceof errors.JOSENotSupported;
}

/**
 * The issuer's signing keys (JWKS), resolved lazily so the gateway starts while the IdP is down.
 *
 * - jose's remote set does the caching: keys are reused for `jwksCacheMaxAgeMs`, and an unknown
 *   `kid` triggers at most one refetch per `jwksCooldownMs` (concurrent refetches are merged).
 * - When a refetch fails, the last good key set keeps verifying tokens (jose alone would fail once
 *   its cache went stale), and for `jwksCooldownMs` we do not ask the IdP again.
 * - Every lookup that needs the network is bounded by `fetchTimeoutMs` in total.
 */
export class IssuerKeys {
  readonly #oidc: OidcConfig;
  readonly #now: () => number;
  #jwksUri: string | undefined;
  #remote: RemoteSet | undefined;
  #discovering: Promise<RemoteSet> | undefined;
  /** Bumped by every successful HTTP 200 JWKS response. */
  #fetchSeq = 0;
  #fallbackSeq = 0;
  #fallback: LocalSet | undefined;
  #lastFailure: { at: number; message: string } | undefined;
  readonly #onJwksFetch: ((ok: boolean) => void) | undefined;

  /** `onJwksFetch` hears of every JWKS request: ok when it answered 200 (metrics). */
  constructor(oidc: OidcConfig, opts: { now?: () => number; onJwksFetch?: (ok: boolean) => void } = {}) {
    this.#oidc = oidc;
    this.#now = opts.now ?? Date.now;
    this.#onJwksFetch = opts.onJwksFetch;
    requireSecureUrl(oidc.issuer, 'OIDC issuer (oidc.issuer)');
    if (oidc.jwksUri) {
      requireSecureUrl(oidc.jwksUri, 'JWKS URL (oidc.jwksUri)');
      this.#jwksUri = oidc.jwksUri;
    }
  }

  /** The JWKS URL, once configured or discovered. */
  get jwksUri(): string | undefined {
    return this.#jwksUri;
  }

  /** Key resolver in the shape jose's verify functions take. */
  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    const timeout = this.#oidc.fetchTimeoutMs;
    if (this.#recentlyFailed()) {
      if (this.#fallback) return this.#fallback(header, token);
      throw this.#unavailable(this.#lastFailure!.message);
    }
    try {
      const key = await withDeadline(
        (async () => {
          const remote = await this.#remoteSet();
          return remote(header, token);
        })(),
        timeout,
      );
      this.#rememberGoodKeys();
      this.#lastFailure = undefined;
      return key;
    } catch (err) {
      if (isKeyMismatch(err)) {
        this.#rememberGoodKeys();
        throw err;
      }
      const message = err instanceof DiscoveryError ? err.message : `fetching ${this.#jwksUri ?? 'the JWKS'} failed: ${describe(err, timeout)}`;
      this.#lastFailure = { at: this.#now(), message };
      this.#report(message, this.#fallback !== undefined);
      if (this.#fallback) return this.#fallback(header, token);
      throw this.#unavailable(message);
    }
  };

  /** Discover and fetch the keys now (at startup). Never throws: a later verify retries. */
  async prefetch(): Promise<void> {
    try {
      const remote = await withDeadline(this.#remoteSet(), this.#oidc.fetchTimeoutMs);
      await withDeadline(remote.reload(), this.#oidc.fetchTimeoutMs);
      this.#rememberGoodKeys();
      this.#lastFailure = undefined;
    } catch (err) {
      const message = err instanceof DiscoveryError ? err.message : `fetching ${this.#jwksUri ?? 'the JWKS'} failed: ${describe(err, this.#oidc.fetchTimeoutMs)}`;
      this.#lastFailure = { at: this.#now(), message };
      this.#report(message, this.#fallback !== undefined);
    }
  }

  /** Whether a key set was fetched at least once: tokens can be verified without the IdP answering now. */
  get loaded(): boolean {
    return this.#fallback !== undefined;
  }

  /** Issuer trouble on the operational log, once per cause per window (a flood of logins gives one line). */
  #report(message: string, haveKeys: boolean): void {
    troubleLog.report(haveKeys ? 'warn' : 'error', `issuer:${this.#oidc.issuer}:${message}`, haveKeys
      ? `the OIDC issuer ${this.#oidc.issuer} failed: ${message}; tokens are verified with the keys fetched before`
      : `the OIDC issuer ${this.#oidc.issuer} failed: ${message}; no signing keys are loaded, so every login is refused until it answers`);
  }

  /** Why the last fetch failed, if it did (for diagnostics; contains no secrets). */
  get lastFailure(): string | undefined {
    return this.#lastFailure?.message;
  }

  #recentlyFailed(): boolean {
    return this.#lastFailure !== undefined && this.#now() - this.#lastFailure.at < this.#oidc.jwksCooldownMs;
  }

  #unavailable(detail: string): IdpUnavailableError {
    return new IdpUnavailableError(
      `the gateway cannot obtain the signing keys of issuer ${this.#oidc.issuer} and has none cached: ${detail}. This is not a problem with your token; retry in a few seconds (operators: check that the gateway can reach the issuer)`,
    );
  }

  #rememberGoodKeys(): void {
    if (!this.#remote || this.#fetchSeq === this.#fallbackSeq) return;
    const jwks = this.#remote.jwks() as JSONWebKeySet | undefined;
    if (!jwks) return;
    this.#fallback = createLocalJWKSet(jwks);
    this.#fallbackSeq = this.#fetchSeq;
  }

  #remoteSet(): Promise<RemoteSet> {
    if (this.#remote) return Promise.resolve(this.#remote);
    if (!this.#discovering) {
      this.#discovering = (async () => {
        if (!this.#jwksUri) {
          const meta = await discoverIssuer(this.#oidc.issuer, this.#oidc.fetchTimeoutMs);
          this.#jwksUri = meta.jwksUri;
        }
        this.#remote = this.#createRemote(this.#jwksUri);
        return this.#remote;
      })().finally(() => {
        this.#discovering = undefined;
      });
    }
    return this.#discovering;
  }

  #createRemote(jwksUri: string): RemoteSet {
    const countingFetch = async (url: string, init: RequestInit): Promise<Response> => {
      let res: Response;
      try {
        res = await boundedFetch(url, init);
      } catch (err) {
        this.#onJwksFetch?.(false);
        throw err;
      }
      if (res.status === 200) this.#fetchSeq++;
      this.#onJwksFetch?.(res.status === 200);
      return res;
    };
    return createRemoteJWKSet(new URL(jwksUri), {
      timeoutDuration: this.#oidc.fetchTimeoutMs,
      cooldownDuration: this.#oidc.jwksCooldownMs,
      cacheMaxAge: this.#oidc.jwksCacheMaxAgeMs,
      [customFetch]: countingFetch,
    });
  }
}
