/**
 * Hostile tokens for the security suite: what an attacker can make without the IdP's private
 * key (unsigned, HMAC with the public key, their own key under a real kid, keys in the header,
 * tampered payloads, garbage), and a recorder that proves a URL in a token is never fetched.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPublicKey, randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { DevIssuer } from '../../src/dev/devIssuer';

export const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as Record<string, unknown>;
}

export function headerOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** A key pair the IdP never published. */
export interface AttackerKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function attackerKey(): Promise<AttackerKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  return { privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid: `attacker-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' } };
}

/** Signs `claims` with the attacker's key under any header (alg RS256 unless the header says otherwise). */
export function signWith(key: AttackerKey, claims: Record<string, unknown>, header: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', ...header } as { alg: string }).sign(key.privateKey);
}

/** alg "none" with the issuer's real kid and an empty signature. */
export function unsigned(claims: Record<string, unknown>, kid: string): string {
  return `${b64url({ alg: 'none', kid })}.${b64url(claims)}.`;
}

/**
 * Key confusion: an HMAC token whose secret is the IdP's public key, as the PEM text or as the
 * JWK's JSON bytes (what a verifier that feeds "the key" to HMAC would use).
 */
export function hmacWithPublicKey(issuer: DevIssuer, claims: Record<string, unknown>, alg: 'HS256' | 'HS384', form: 'pem' | 'jwk'): Promise<string> {
  const jwk = issuer.publicJwks().keys[0] as JWK & { kid: string };
  const secret = form === 'pem'
    ? Buffer.from(createPublicKey({ key: jwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string)
    : Buffer.from(JSON.stringify(jwk));
  return new SignJWT(claims).setProtectedHeader({ alg, kid: jwk.kid }).sign(secret);
}

/** The token's payload replaced, its original signature kept. */
export function tamper(token: string, changes: Record<string, unknown>): string {
  const [h, , s] = token.split('.');
  return `${h}.${b64url({ ...claimsOf(token), ...changes })}.${s}`;
}

/** An HTTP server that answers every request with `body` and remembers each request's path. */
export interface Recorder {
  url: string;
  requests: string[];
  stop(): Promise<void>;
}

export async function startRecorder(body: unknown): Promise<Recorder> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '/');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
