import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { JWK } from 'jose';
import type { DevClient } from '../devIssuer';

/**
 * The demo's service apps, shaped like Okta client-credentials apps: one reads, one writes (both
 * with client secrets), and one reads with `private_key_jwt`, the way docs/okta.md sets up an
 * Okta service app. The secrets and the key are made fresh at every start and live only in
 * memory, the 0600 state file and the 0600 key file in the demo's 0700 directory.
 */
export interface DemoClient extends DevClient {
  /** client_secret_basic (svc-reporting, svc-billing). */
  clientSecret?: string;
  /** private_key_jwt (svc-agent): the PEM private key's file, and the kid its public JWK is registered with. */
  privateKeyFile?: string;
  keyId?: string;
  /** The role the client's grant gives it (printed in the examples). */
  role: 'reader' | 'writer';
}

export const DEMO_AUDIENCE = 'api://tokengate';
export const DEMO_SCOPE = 'db.connect';
export const KEY_CLIENT_ID = 'svc-agent';

/** A fresh RSA key for svc-agent: the private half in a 0600 file in `dir`, the public half as the JWK "registered" with the issuer. */
function agentKey(dir: string): { file: string; keyId: string; jwk: JWK } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const file = join(dir, `${KEY_CLIENT_ID}.key.pem`);
  rmSync(file, { force: true });
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const keyId = `${KEY_CLIENT_ID}-1`;
  return { file, keyId, jwk: { ...(publicKey.export({ format: 'jwk' }) as JWK), kid: keyId, alg: 'RS256', use: 'sig' } };
}

export function demoClients(dir: string): DemoClient[] {
  const secret = (): string => `dev-${randomBytes(18).toString('base64url')}`;
  const key = agentKey(dir);
  return [
    { clientId: 'svc-reporting', clientSecret: secret(), groups: ['db-readers'], scopes: [DEMO_SCOPE], role: 'reader' },
    { clientId: 'svc-billing', clientSecret: secret(), groups: ['db-writers'], scopes: [DEMO_SCOPE], role: 'writer' },
    { clientId: KEY_CLIENT_ID, jwks: [key.jwk], privateKeyFile: key.file, keyId: key.keyId, groups: ['db-readers'], scopes: [DEMO_SCOPE], role: 'reader' },
  ];
}
