/**
 * Issuer, discovery and JWKS URLs carry the keys that decide who gets into the databases,
 * so they must be https:// — except on loopback, where the dev issuer and tests live.
 */

export class InsecureUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InsecureUrlError';
  }
}

/** True for localhost, 127.0.0.0/8 and ::1 (with or without URL brackets). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) return host.split('.').every((p) => Number(p) <= 255);
  return false;
}

/**
 * Parses `url` and checks its scheme. `what` names the URL in the message
 * ("issuer", "JWKS URL", ...) so the DBA knows which setting to fix.
 */
export function requireSecureUrl(url: string, what: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InsecureUrlError(`the ${what} "${url}" is not a valid absolute URL; expected something like https://example.okta.com/oauth2/default`);
  }
  if (parsed.protocol === 'https:') return parsed;
  if (parsed.protocol === 'http:' && isLoopbackHost(parsed.hostname)) return parsed;
  if (parsed.protocol === 'http:') {
    throw new InsecureUrlError(
      `the ${what} "${url}" uses http:// on a non-loopback host (${parsed.hostname}); signing keys fetched without TLS could be forged. Use https:// (plain http is allowed only for localhost, 127.0.0.0/8 and ::1)`,
    );
  }
  throw new InsecureUrlError(`the ${what} "${url}" has unsupported scheme ${parsed.protocol}; use https://`);
}
