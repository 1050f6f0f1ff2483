'use strict';
/**
 * Access tokens for an agent, from the OAuth 2.0 client credentials grant (an Okta service
 * app). One token is shared by every connection and fetched again shortly before it expires,
 * so a pool of N connections costs one token request per token lifetime, not N.
 *
 * Configuration (environment):
 *   OIDC_ISSUER               https://{yourOktaDomain}/oauth2/{authServerId}; the token URL is discovered
 *   OIDC_TOKEN_URL            or the token endpoint itself ({issuer}/v1/token for Okta)
 *   OIDC_CLIENT_ID            the service app's client id
 *   OIDC_CLIENT_SECRET_FILE   a file holding its secret (or OIDC_CLIENT_SECRET)
 *   OIDC_SCOPE                scopes, space-separated (default: db.connect)
 *
 * For private_key_jwt (Okta's recommendation for service apps) use `tokengate token
 * --private-key`, or sign the client assertion yourself (see docs/okta.md).
 */
const { readFileSync } = require('node:fs');

class ClientCredentialsTokenSource {
  /**
   * @param {{ tokenUrl?: string, issuer?: string, clientId: string, clientSecret: string,
   *           scope?: string, refreshBeforeSec?: number }} o
   */
  constructor(o) {
    if (!o.tokenUrl && !o.issuer) throw new Error('set OIDC_ISSUER (or OIDC_TOKEN_URL) to your authorization server');
    if (!o.clientId || !o.clientSecret) throw new Error('set OIDC_CLIENT_ID and OIDC_CLIENT_SECRET_FILE (or OIDC_CLIENT_SECRET)');
    this.o = { ...o, scope: o.scope || 'db.connect', refreshBeforeSec: o.refreshBeforeSec ?? 120 };
    this.current = undefined; // { token, expiresAt (ms) }
    this.pending = undefined; // one request in flight, shared by concurrent callers
    this.requests = 0;
  }

  /** A token with at least refreshBeforeSec left: reuse it, or fetch a new one. */
  async token() {
    const { current } = this;
    if (current && current.expiresAt - this.o.refreshBeforeSec * 1000 > Date.now()) return current.token;
    this.pending ??= this.fetchToken().finally(() => (this.pending = undefined));
    return this.pending;
  }

  async tokenUrl() {
    if (this.o.tokenUrl) return this.o.tokenUrl;
    const res = await fetch(`${this.o.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`);
    if (!res.ok) throw new Error(`discovery at ${this.o.issuer} answered HTTP ${res.status}; check OIDC_ISSUER`);
    this.o.tokenUrl = (await res.json()).token_endpoint;
    return this.o.tokenUrl;
  }

  async fetchToken() {
    const url = await this.tokenUrl();
    const form = (v) => new URLSearchParams({ v }).toString().slice(2);
    const basic = Buffer.from(`${form(this.o.clientId)}:${form(this.o.clientSecret)}`).toString('base64');
    this.requests++;
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: this.o.scope }).toString(),
      signal: AbortSignal.timeout(10_000),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok || typeof body.access_token !== 'string') {
      // The IdP's own words (error, error_description); never the secret.
      throw new Error(`token request to ${url} failed: HTTP ${res.status} ${body.error ?? ''} ${body.error_description ?? ''}`.trim());
    }
    this.current = { token: body.access_token, expiresAt: Date.now() + Number(body.expires_in ?? 300) * 1000 };
    return this.current.token;
  }
}

/** A token source configured from the OIDC_* environment variables. */
function tokenSourceFromEnv(env = process.env) {
  const clientSecret = env.OIDC_CLIENT_SECRET_FILE ? readFileSync(env.OIDC_CLIENT_SECRET_FILE, 'utf8').trim() : env.OIDC_CLIENT_SECRET;
  return new ClientCredentialsTokenSource({
    issuer: env.OIDC_ISSUER,
    tokenUrl: env.OIDC_TOKEN_URL,
    clientId: env.OIDC_CLIENT_ID,
    clientSecret,
    scope: env.OIDC_SCOPE,
  });
}

/**
 * TLS to the gateway as libpq's sslmode=verify-full: PGSSLROOTCERT names the CA, and Node
 * checks the certificate chain and the host name. Without it: no TLS (only for a local gateway).
 */
function sslFromEnv(env = process.env) {
  if (!env.PGSSLROOTCERT) return false;
  return { ca: readFileSync(env.PGSSLROOTCERT, 'utf8'), rejectUnauthorized: true };
}

module.exports = { ClientCredentialsTokenSource, tokenSourceFromEnv, sslFromEnv };
