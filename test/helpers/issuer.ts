/** Thin helpers around the development issuer for tests. */
import { createHash } from 'node:crypto';
import { importJWK, SignJWT, exportSPKI, type KeyObject } from 'jose';
import type { OidcConfig } from '../../src/config/schema';
import { startDevIssuer, type DevIssuer, type DevIssuerOptions } from '../../src/dev/devIssuer';

export const TEST_AUDIENCE = 'api://tokengate';

export const TEST_CLIENTS = [
  { clientId: 'svc-reporting', clientSecret: 'dev-secret-reporting', groups: ['analysts'], scopes: ['db:connect', 'db:read'] },
  { clientId: 'svc-writer', clientSecret: 'dev-secret-writer', groups: ['writers', 'analysts'], scopes: ['db:connect', 'db:write'] },
];

export function startTestIssuer(overrides: Partial<DevIssuerOptions> = {}): Promise<DevIssuer> {
  return startDevIssuer({ audience: TEST_AUDIENCE, clients: TEST_CLIENTS, ...overrides });
}

/** An OidcConfig pointing at `issuer`, with short timeouts suited to tests. */
export function oidcConfigFor(issuer: string, overrides: Partial<OidcConfig> = {}): OidcConfig {
  return {
    issuer,
    audience: [TEST_AUDIENCE],
    algorithms: ['RS256'],
    clockSkewMs: 30_000,
    requiredScopes: ['db:connect'],
    groupsClaim: 'groups',
    fetchTimeoutMs: 1_000,
    jwksCooldownMs: 30_000,
    jwksCacheMaxAgeMs: 600_000,
    devIssuer: true,
    ...overrides,
  };
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/** An unsigned token (alg "none") with the given claims. */
export function unsignedToken(claims: Record<string, unknown>): string {
  return `${b64({ alg: 'none' })}.${b64(claims)}.`;
}

/** An unsigned token with a fake signature part, so it passes structural checks. */
export function noneTokenWithSignature(claims: Record<string, unknown>): string {
  return `${b64({ alg: 'none' })}.${b64(claims)}.AAAA`;
}

/** The classic key-confusion attack: HS256 with the issuer's public key (PEM) as the HMAC secret. */
export async function hs256WithPublicKey(dev: DevIssuer, claims: Record<string, unknown>): Promise<string> {
  const jwk = dev.publicJwks().keys[0] as { kid: string };
  const publicKey = (await importJWK(jwk as never, 'RS256', { extractable: true })) as KeyObject;
  const pem = await exportSPKI(publicKey);
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: jwk.kid }).sign(new TextEncoder().encode(pem));
}

/** Replace claims in the payload while keeping the original signature. */
export function tamperPayload(token: string, changes: Record<string, unknown>): string {
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
  return `${h}.${b64({ ...claims, ...changes })}.${s}`;
}

/** Claims of a token, decoded without verification (for assertions). */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Asserts that a message does not leak the token or its signature. */
export function expectNoTokenIn(message: string, token: string): void {
  const signature = token.split('.')[2] ?? '';
  if (token.length > 0) expect(message.includes(token)).toBe(false);
  if (signature.length >= 8) expect(message.includes(signature)).toBe(false);
  expect(message.includes(createHash('sha256').update(token).digest('hex'))).toBe(false);
}
