/**
 * `tokengate token` as an agent runs it: the built CLI in a child process against the
 * development issuer (client_secret_basic, client_secret_post, private_key_jwt), its cache
 * file, and how IdP refusals are reported. No secret may appear in any output.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import { TokenVerifier } from '../../src/identity/verifier';
import { claimsOf, oidcConfigFor } from '../helpers/issuer';
import { buildOnce, tokengate } from '../demo/cli';

const AUDIENCE = 'api://tokengate';
const SECRET = 'basic-Secret-5c1e0f77a9';
const OTHER_SECRET = 'wrong-Secret-93d1a7b2';

let dev: DevIssuer;
let shortLived: DevIssuer;
let dir: string;
let rsaPem: string;
let ecJwk: string;
let strangerPem: string;

beforeAll(async () => {
  const rsa = await generateKeyPair('RS256', { extractable: true });
  const ec = await generateKeyPair('ES256', { extractable: true });
  const stranger = await generateKeyPair('RS256', { extractable: true });
  const clients = [
    { clientId: 'svc-secret', clientSecret: SECRET, groups: ['db-readers'], scopes: ['db.connect', 'db.read'] },
    { clientId: 'svc-rsa', jwks: [{ ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256' }], groups: [], scopes: ['db.connect'] },
    { clientId: 'svc-ec', jwks: [{ ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256' }], groups: [], scopes: ['db.connect'] },
  ];
  [dev, shortLived] = await Promise.all([
    startDevIssuer({ audience: AUDIENCE, clients, tokenLifetimeSec: 600 }),
    startDevIssuer({ audience: AUDIENCE, clients, tokenLifetimeSec: 50 }),
    buildOnce(),
  ]);
  dir = mkdtempSync(join(tmpdir(), 'tg-token-'));
  rsaPem = join(dir, 'rsa.pem');
  writeFileSync(rsaPem, await exportPKCS8(rsa.privateKey), { mode: 0o600 });
  ecJwk = join(dir, 'ec.jwk.json');
  writeFileSync(ecJwk, JSON.stringify({ ...(await exportJWK(ec.privateKey)), kid: 'ec-1' }), { mode: 0o600 });
  strangerPem = join(dir, 'stranger.pem');
  writeFileSync(strangerPem, await exportPKCS8(stranger.privateKey), { mode: 0o600 });
  writeFileSync(join(dir, 'secret'), `${SECRET}\n`, { mode: 0o600 });
}, 180_000);

afterAll(async () => {
  await dev?.stop();
  await shortLived?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A clean environment: no secret inherited from the developer's shell. */
const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ TOKENGATE_CLIENT_SECRET: '', TMPDIR: dir, ...extra });

async function expectValidToken(stdout: string, clientId: string, scopes: string[]): Promise<string> {
  expect(stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/); // the token and a newline, nothing else
  const token = stdout.trim();
  const identity = await new TokenVerifier(oidcConfigFor(dev.issuer, { requiredScopes: [] })).verify(token);
  expect(identity).toMatchObject({ clientId, scopes });
  return token;
}

describe('client authentication methods', () => {
  test('client_secret_basic (default) with --client-secret-file and repeated --scope', async () => {
    const before = dev.requestCount('v1/token');
    const r = await tokengate(['token', '--issuer', dev.issuer, '--client-id', 'svc-secret', '--client-secret-file', join(dir, 'secret'), '--scope', 'db.connect', '--scope', 'db.read'], { env: env() });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    await expectValidToken(r.stdout, 'svc-secret', ['db.connect', 'db.read']);
    expect(dev.requestCount('v1/token')).toBe(before + 1);
    expect(dev.requestCount('.well-known/openid-configuration')).toBeGreaterThan(0);
  });

  test('client_secret_post with the secret from TOKENGATE_CLIENT_SECRET', async () => {
    const r = await tokengate(['token', '--issuer', dev.issuer, '--client-id', 'svc-secret', '--auth', 'post', '--scope', 'db.connect'], { env: env({ TOKENGATE_CLIENT_SECRET: SECRET }) });
    expect([r.code, r.stderr]).toEqual([0, '']);
    await expectValidToken(r.stdout, 'svc-secret', ['db.connect']);
  });

  test('private_key_jwt with an RSA PEM key and --key-id', async () => {
    const r = await tokengate(['token', '--issuer', dev.issuer, '--client-id', 'svc-rsa', '--private-key', rsaPem, '--key-id', 'rsa-1', '--scope', 'db.connect'], { env: env() });
    expect([r.code, r.stderr]).toEqual([0, '']);
    await expectValidToken(r.stdout, 'svc-rsa', ['db.connect']);
  });

  test('private_key_jwt with an EC private JWK (ES256, kid from the JWK)', async () => {
    const r = await tokengate(['token', '--issuer', dev.issuer, '--client-id', 'svc-ec', '--private-key', ecJwk, '--scope', 'db.connect'], { env: env() });
    expect([r.code, r.stderr]).toEqual([0, '']);
    await expectValidToken(r.stdout, 'svc-ec', ['db.connect']);
  });

  test('the issuer can come from a gateway config, whose upstream secrets are not needed', async () => {
    const config = join(dir, 'tokengate.yaml');
    writeFileSync(config, `oidc:\n  issuer: ${dev.issuer}\n  audience: ${AUDIENCE}\nupstreams:\n  pg:\n    roles:\n      reader: { user: ro, password: \${NOT_SET_ON_AGENTS} }\n`);
    const r = await tokengate(['token', '--config', config, '--client-id', 'svc-secret', '--client-secret-file', join(dir, 'secret')], { env: env() });
    expect([r.code, r.stderr]).toEqual([0, '']);
    await expectValidToken(r.stdout, 'svc-secret', ['db.connect', 'db.read']);
  });
});

describe('IdP refusals are reported with status, error and description, and never the secret', () => {
  test('a wrong secret: HTTP 401 invalid_client', async () => {
    for (const args of [
      ['--client-secret', OTHER_SECRET],
      ['--client-secret', OTHER_SECRET, '--auth', 'post'],
    ]) {
      const r = await tokengate(['token', '--issuer', dev.issuer, '--client-id', 'svc-secret', ...args], { env: env() });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('HTTP 401');
      expect(r.stderr).toContain('invalid_client: The client secret supplied for a confidential client is invalid.');
      expect(r.stderr).toContain('check the client id');
      expect(r.stderr).not.toContain(OTHER_SECRET);
      expect(r.stderr).not.toContain(SECRET);
    }
  });

  test('a key the app does not know: HTTP 401 invalid_client', async () => {
    const r = await tokengate(['token', '--issuer', dev.issuer, '--client-id', 'svc-rsa', '--private-key', strangerPem], { env: env() });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/HTTP 401: invalid_client: The client_assertion is invalid/);
    expect(r.stderr).not.toContain('PRIVATE KEY');
  });

  test('a scope the app may not have: HTTP 400 invalid_scope', async () => {
    const r = await tokengate(['token', '--issuer', dev.issuer, '--client-id', 'svc-secret', '--scope', 'db.admin'], { env: env({ TOKENGATE_CLIENT_SECRET: SECRET }) });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('HTTP 400: invalid_scope');
    expect(r.stderr).toContain('(db.admin)');
    expect(r.stderr).not.toContain(SECRET);
  });

  test('an unreachable issuer and usage mistakes', async () => {
    const down = await tokengate(['token', '--issuer', 'http://127.0.0.1:1/oauth2/default', '--client-id', 'x', '--timeout', '2s'], { env: env({ TOKENGATE_CLIENT_SECRET: SECRET }) });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('could not reach the identity provider');
    expect(down.stderr).not.toContain(SECRET);

    const noId = await tokengate(['token', '--issuer', dev.issuer], { env: env({ TOKENGATE_CLIENT_SECRET: SECRET }) });
    expect([noId.code, noId.stdout]).toEqual([2, '']);
    expect(noId.stderr).toContain('--client-id is required');

    const noSecret = await tokengate(['token', '--issuer', dev.issuer, '--client-id', 'svc-secret'], { env: env() });
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toContain('TOKENGATE_CLIENT_SECRET');

    const plainHttp = await tokengate(['token', '--issuer', 'http://idp.example.com/oauth2/default', '--client-id', 'x'], { env: env({ TOKENGATE_CLIENT_SECRET: SECRET }) });
    expect(plainHttp.code).toBe(1);
    expect(plainHttp.stderr).toContain('uses http:// on a non-loopback host');

    const expiredWithoutDemo = await tokengate(['token', '--issuer', dev.issuer, '--client-id', 'svc-secret', '--expired'], { env: env({ TOKENGATE_CLIENT_SECRET: SECRET }) });
    expect(expiredWithoutDemo.code).toBe(2);
    expect(expiredWithoutDemo.stderr).toContain('--expired works only with --demo');
  });

  test('--demo without a running demo says how to start one', async () => {
    const r = await tokengate(['token', '--demo', '--client', 'svc-reporting'], { env: env({ TMPDIR: mkdtempSync(join(dir, 'empty-')) }) });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('no running demo found');
    expect(r.stderr).toContain('npx tokengate demo');
  });
});

describe('--cache', () => {
  const args = (issuer: DevIssuer, cache: string, scope = 'db.connect'): string[] =>
    ['token', '--issuer', issuer.issuer, '--client-id', 'svc-secret', '--client-secret-file', join(dir, 'secret'), '--scope', scope, '--cache', cache];

  test('reuses the token from a 0600 file (in a new 0700 directory) until it nears expiry, and only for the same request', async () => {
    const cache = join(dir, 'new/cache-dir/cache.json');
    const before = dev.requestCount('v1/token');
    const first = await tokengate(args(dev, cache), { env: env() });
    expect([first.code, first.stderr]).toEqual([0, '']);
    expect(statSync(cache).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'new/cache-dir')).mode & 0o777).toBe(0o700);
    expect(readFileSync(cache, 'utf8')).not.toContain(SECRET);
    const second = await tokengate(args(dev, cache), { env: env() });
    expect(second.stdout).toBe(first.stdout);
    expect(dev.requestCount('v1/token')).toBe(before + 1);

    // A different scope is a different token.
    const other = await tokengate(args(dev, cache, 'db.read'), { env: env() });
    expect(other.code).toBe(0);
    expect(claimsOf(other.stdout.trim()).scp).toEqual(['db.read']);
    expect(dev.requestCount('v1/token')).toBe(before + 2);
  });

  test('a token within 60 s of expiry is not reused', async () => {
    const cache = join(dir, 'short.json');
    const before = shortLived.requestCount('v1/token');
    const a = await tokengate(args(shortLived, cache), { env: env() });
    const b = await tokengate(args(shortLived, cache), { env: env() });
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(b.stdout).not.toBe(a.stdout);
    expect(shortLived.requestCount('v1/token')).toBe(before + 2);
  });

  test('a cache file others can read is ignored, replaced and narrowed to 0600', async () => {
    const cache = join(dir, 'wide.json');
    const first = await tokengate(args(dev, cache), { env: env() });
    chmodSync(cache, 0o644);
    const before = dev.requestCount('v1/token');
    const second = await tokengate(args(dev, cache), { env: env() });
    expect(second.code).toBe(0);
    expect(second.stderr).toContain('readable by group or others');
    expect(second.stdout).not.toBe(first.stdout);
    expect(dev.requestCount('v1/token')).toBe(before + 1);
    expect(statSync(cache).mode & 0o777).toBe(0o600);
  });
});
