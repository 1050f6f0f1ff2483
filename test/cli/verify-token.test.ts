/**
 * `tokengate verify-token` as an operator runs it: the real bin/tokengate.js (built by
 * test/globalSetup.ts) in a child process, checking tokens from the dev issuer that runs in
 * this test process (so the child must be awaited asynchronously, never with spawnSync).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';

const ROOT = resolve(__dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'tokengate.js');
const AUDIENCE = 'api://tokengate';
const RO_PASSWORD = 'roPw-41f7-RECOGNISABLE';

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runNode(args: string[], o: { env?: Record<string, string>; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    // A child may exit before reading its input (EPIPE): that is its answer, not a test failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(o.input ?? '');
  });
}

/** Checks the exit status; on a mismatch the failure shows the whole output, which says why. */
function expectExit(r: CliResult, code: number): void {
  expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toMatchObject({ code });
}

let issuer: DevIssuer;
let dir: string;
let configFile: string;

function verifyToken(args: string[], input?: string): Promise<CliResult> {
  return runNode([BIN, 'verify-token', '--config', configFile, ...args], { env: { TG_TEST_RO_PASSWORD: RO_PASSWORD }, input });
}

beforeAll(async () => {
  issuer = await startDevIssuer({
    audience: AUDIENCE,
    clients: [
      { clientId: 'svc-reporting', clientSecret: 'reporting-dev-secret', groups: ['db-readers'], scopes: ['db.connect', 'db.read'] },
      { clientId: 'svc-marketing', clientSecret: 'marketing-dev-secret', groups: ['marketing'], scopes: ['db.connect'] },
    ],
  });
  dir = mkdtempSync(join(tmpdir(), 'tg-cli-verify-'));
  configFile = join(dir, 'tokengate.yaml');
  writeFileSync(configFile, `
listen:
  postgres: 127.0.0.1:6432
oidc:
  issuer: ${issuer.issuer}
  audience: ${AUDIENCE}
  requiredScopes: [db.connect]
  maxTokenLifetime: 1h
  fetchTimeout: 10s
  devIssuer: true
upstreams:
  app-pg:
    protocol: postgres
    host: 127.0.0.1
    databases: { app: app, analytics: analytics }
    roles:
      reader: { user: agent_ro, password: \${TG_TEST_RO_PASSWORD} }
grants:
  - name: reporting-agents
    match: { groups: [db-readers] }
    upstream: app-pg
    databases: [app, analytics]
    roles: [reader]
`);
});

afterAll(async () => {
  issuer.setAvailable(true);
  await issuer?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Neither the token, nor its signature part, nor the upstream password may appear anywhere. */
function expectNoSecrets(r: CliResult, token: string): void {
  const signature = token.split('.')[2];
  expect(signature.length).toBeGreaterThan(40);
  for (const text of [r.stdout, r.stderr]) {
    expect(text).not.toContain(token);
    expect(text).not.toContain(signature);
    expect(text).not.toContain(RO_PASSWORD);
  }
}

function checkLines(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of stdout.matchAll(/^ {2}(ok {2}|FAIL) ([a-z-]+): /gm)) out[m[2]] = m[1].trim();
  return out;
}

describe('tokengate verify-token', () => {
  test('a valid token: claims, every check ok, the grants that apply, exit 0', async () => {
    const token = await issuer.mintToken({ clientId: 'svc-reporting' });
    const r = await verifyToken([token]);
    expect(r.stderr).toBe('');
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^header: \{"alg":"RS256","kid":"[^"]+"\}\n/);
    expect(r.stdout).toContain('claims: {');
    expect(r.stdout).toContain('"cid": "svc-reporting"');
    expect(r.stdout).toContain(`"iss": "${issuer.issuer}"`);
    expect(r.stdout).toMatch(/"groups": \[\s*"db-readers"\s*\]/);
    expect(checkLines(r.stdout)).toEqual({
      format: 'ok', algorithm: 'ok', type: 'ok', header: 'ok', issuer: 'ok', signature: 'ok', 'claim-types': 'ok', 'sender-constraint': 'ok', audience: 'ok', expiry: 'ok',
      'not-before': 'ok', 'issued-at': 'ok', lifetime: 'ok', subject: 'ok', scopes: 'ok',
    });
    expect(r.stdout).toContain('grants that apply:\n  reporting-agents: postgres upstream app-pg, databases [app, analytics], roles [reader]\n');
    expect(r.stdout.trimEnd().endsWith('verdict: VALID')).toBe(true);
    expectNoSecrets(r, token);
  });

  test('a valid token that no grant matches says so in the verdict and exits 3', async () => {
    const token = await issuer.mintToken({ clientId: 'svc-marketing' });
    const r = await verifyToken([token]);
    expectExit(r, 3);
    expect(r.stdout).toContain('grants that apply:\n  none: this token cannot open any session\n');
    expect(r.stdout.trimEnd()).toMatch(/verdict: VALID, but no grant applies: .*add a grant that matches it/);
    expectNoSecrets(r, token);
  });

  test('an expired token prints the failing check and exits 1', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await issuer.mintToken({ clientId: 'svc-reporting', issuedAtSec: now - 1800, expiresInSec: -900 });
    const r = await verifyToken([token]);
    expectExit(r, 1);
    const checks = checkLines(r.stdout);
    expect(checks.expiry).toBe('FAIL');
    expect(checks.signature).toBe('ok');
    expect(checks.audience).toBe('ok');
    expect(r.stdout).toMatch(/FAIL expiry: the access token expired at .*; fetch a new token from your issuer and reconnect/);
    expect(r.stdout).toMatch(/verdict: REJECTED \(expired\): the access token expired at/);
    expect(r.stdout).not.toContain('grants that apply');
    expectNoSecrets(r, token);
  });

  test('a token for another audience prints the failing check and exits 1', async () => {
    const token = await issuer.mintToken({ clientId: 'svc-reporting', claims: { aud: 'api://some-other-app' } });
    const r = await verifyToken([token]);
    expectExit(r, 1);
    const checks = checkLines(r.stdout);
    expect(checks.audience).toBe('FAIL');
    expect(checks.expiry).toBe('ok');
    expect(r.stdout).toMatch(/FAIL audience: .*api:\/\/some-other-app.*api:\/\/tokengate/);
    expect(r.stdout).toContain('verdict: REJECTED (bad_audience)');
    expectNoSecrets(r, token);
  });

  test('"-" reads the token from standard input (surrounding whitespace ignored)', async () => {
    const token = await issuer.mintToken({ clientId: 'svc-reporting' });
    const r = await verifyToken(['-'], `\n  ${token}\n`);
    expect(r.stderr).toBe('');
    expectExit(r, 0);
    expect(r.stdout).toContain('verdict: VALID');
    expectNoSecrets(r, token);
  });

  test('a tampered token fails the signature check, and its claims are marked untrusted', async () => {
    const token = await issuer.mintToken({ clientId: 'svc-reporting' });
    const [h, , s] = token.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ iss: issuer.issuer, aud: AUDIENCE, sub: 'admin', exp: 9999999999 })).toString('base64url')}.${s}`;
    const r = await verifyToken([forged]);
    expectExit(r, 1);
    expect(checkLines(r.stdout).signature).toBe('FAIL');
    expect(r.stdout).toContain('claims (signature not verified: do not trust them): {');
    expect(r.stdout).toContain('verdict: REJECTED (bad_signature)');
    expectNoSecrets(r, forged);
  });

  test('something that is not a token is refused without being echoed', async () => {
    const garbage = 'not-a-token-but-a-secret-looking-string-0123456789abcdef';
    const r = await verifyToken([garbage]);
    expectExit(r, 1);
    expect(r.stdout).toContain('FAIL format: the token is not a usable access token');
    expect(r.stdout + r.stderr).not.toMatch(/password/);
    expect(r.stdout + r.stderr).not.toContain(garbage);
  });

  test('a pasted "Bearer " prefix is named, with the fix', async () => {
    const token = await issuer.mintToken({ clientId: 'svc-reporting' });
    const r = await verifyToken([`Bearer ${token}`]);
    expectExit(r, 1);
    expect(r.stdout).toContain('FAIL format: the token is not a usable access token: it starts with "Bearer "');
    expect(r.stdout).toContain('drop that word and send only the token after it');
    expectNoSecrets(r, token);
  });

  test('no token at all is a usage error (2), not a rejected token (1)', async () => {
    for (const args of [[], ['-'], ['']]) {
      const r = await verifyToken(args, '\n');
      expectExit(r, 2);
      expect(r.stderr).toBe('error: no token given: pass it as the argument, or - with the token on standard input (tokengate verify-token - < token.txt)\n');
      expect(r.stdout).toBe('');
    }
    // Without an argument, a token piped in is read.
    const token = await issuer.mintToken({ clientId: 'svc-reporting' });
    const piped = await verifyToken([], token);
    expectExit(piped, 0);
    expect(piped.stdout).toContain('verdict: VALID');
  });

  test('an unreachable issuer fails the signature check with idp_unavailable, exit 1', async () => {
    const token = await issuer.mintToken({ clientId: 'svc-reporting' });
    issuer.setAvailable(false, '503');
    try {
      const r = await verifyToken([token]);
      expectExit(r, 1);
      expect(checkLines(r.stdout).signature).toBe('FAIL');
      expect(r.stdout).toContain('verdict: REJECTED (idp_unavailable)');
      expectNoSecrets(r, token);
    } finally {
      issuer.setAvailable(true);
    }
  });

  test('oidc settings the token verifier refuses are printed cleanly with exit 2', async () => {
    // Config validation already refuses these, so drive the CLI's guard directly in a real process.
    const oidc = { issuer: issuer.issuer, audience: [AUDIENCE], algorithms: ['HS256'], clockSkewMs: 30_000, requiredScopes: [], groupsClaim: 'groups', fetchTimeoutMs: 1000, jwksCooldownMs: 30_000, jwksCacheMaxAgeMs: 600_000, devIssuer: true };
    const script = `require(${JSON.stringify(join(ROOT, 'dist', 'src', 'cli', 'verifyToken.js'))}).verifierOrExit(JSON.parse(process.argv[1])); process.stdout.write('not reached');`;
    const algs = await runNode(['-e', script, JSON.stringify(oidc)]);
    expectExit(algs, 2);
    expect(algs.stdout).toBe('');
    expect(algs.stderr).toBe('cannot verify tokens with these oidc settings: oidc.algorithms (HS256) allows no asymmetric algorithm; "none" and HS* are never accepted. Use RS256 for Okta\n');
    const insecure = await runNode(['-e', script, JSON.stringify({ ...oidc, algorithms: ['RS256'], issuer: 'http://idp.example.com/oauth2/default' })]);
    expectExit(insecure, 2);
    expect(insecure.stderr).toMatch(/^cannot verify tokens with these oidc settings: the OIDC issuer \(oidc\.issuer\) "http:\/\/idp\.example\.com\/oauth2\/default" uses http:\/\/ on a non-loopback host/);
    expect(insecure.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
