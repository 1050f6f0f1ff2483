import { fetchJson } from './boundedFetch';
import { requireSecureUrl } from './secureUrl';

/** What the gateway needs from the issuer's metadata. */
export interface IssuerMetadata {
  issuer: string;
  jwksUri: string;
  tokenEndpoint?: string;
  /** The document the values came from (for diagnostics). */
  source: string;
}

/** Discovery failed: the issuer is unreachable, or its metadata is unusable. */
export class DiscoveryError extends Error {
  constructor(
    message: string,
    /** true when the IdP could not be reached (network, timeout, 5xx) rather than misconfigured. */
    readonly unreachable: boolean,
  ) {
    super(message);
    this.name = 'DiscoveryError';
  }
}

const WELL_KNOWN = ['openid-configuration', 'oauth-authorization-server'] as const;

function describeFetchError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${timeoutMs} ms (oidc.fetchTimeoutMs)`;
  const cause = e?.cause?.code ?? e?.cause?.message;
  return cause ? `${e?.message ?? 'fetch failed'} (${cause})` : (e?.message ?? String(err));
}

/**
 * Fetches `{issuer}/.well-known/openid-configuration`, falling back to
 * `{issuer}/.well-known/oauth-authorization-server` (Okta serves both), and checks that the
 * document names exactly the configured issuer (a mismatch means a proxy or typo, and tokens
 * would never validate).
 */
export async function discoverIssuer(issuer: string, timeoutMs: number): Promise<IssuerMetadata> {
  requireSecureUrl(issuer, 'OIDC issuer (oidc.issuer)');
  const base = issuer.replace(/\/+$/, '');
  const attempts: string[] = [];
  for (const name of WELL_KNOWN) {
    const url = `${base}/.well-known/${name}`;
    let result: { status: number; json: unknown };
    try {
      result = await fetchJson(url, timeoutMs);
    } catch (err) {
      // Network trouble will not go away by asking a second URL on the same host.
      throw new DiscoveryError(`could not reach the identity provider at ${url}: ${describeFetchError(err, timeoutMs)}`, true);
    }
    if (result.status >= 500) {
      throw new DiscoveryError(`the identity provider answered HTTP ${result.status} for ${url}; it is unavailable, try again later`, true);
    }
    if (result.status !== 200 || typeof result.json !== 'object' || result.json === null) {
      attempts.push(`${url} -> ${result.status === 200 ? 'not a JSON object' : `HTTP ${result.status}`}`);
      continue;
    }
    return parseMetadata(result.json as Record<string, unknown>, issuer, url);
  }
  throw new DiscoveryError(
    `no OIDC/OAuth metadata found for issuer ${issuer} (${attempts.join('; ')}); check oidc.issuer (for Okta it looks like https://{domain}/oauth2/{authServerId}) or set oidc.jwksUri explicitly`,
    false,
  );
}

function parseMetadata(doc: Record<string, unknown>, issuer: string, source: string): IssuerMetadata {
  if (doc.issuer !== issuer) {
    throw new DiscoveryError(
      `the metadata at ${source} names issuer ${JSON.stringify(doc.issuer)} but oidc.issuer is ${JSON.stringify(issuer)}; they must match exactly (including a trailing slash), so fix oidc.issuer`,
      false,
    );
  }
  if (typeof doc.jwks_uri !== 'string' || doc.jwks_uri === '') {
    throw new DiscoveryError(`the metadata at ${source} has no jwks_uri; set oidc.jwksUri explicitly`, false);
  }
  try {
    requireSecureUrl(doc.jwks_uri, `JWKS URL advertised by ${source}`);
  } catch (err) {
    throw new DiscoveryError((err as Error).message, false);
  }
  const tokenEndpoint = typeof doc.token_endpoint === 'string' ? doc.token_endpoint : undefined;
  return { issuer, jwksUri: doc.jwks_uri, tokenEndpoint, source };
}
