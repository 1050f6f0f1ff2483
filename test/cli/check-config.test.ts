/**
 * `tokengate check-config` as an operator runs it: the real bin/tokengate.js (built by
 * test/globalSetup.ts) in a child process, with the config and secrets on disk.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const BIN = resolve(__dirname, '..', '..', 'bin', 'tokengate.js');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], o: { env?: Record<string, string>; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: o.cwd, env: { ...process.env, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] });
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
  });
}

/** Checks the exit status; on a mismatch the failure shows the whole output, which says why. */
function expectExit(r: CliResult, code: number): void {
  expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toMatchObject({ code });
}

/** Recognisable secret values: if any of them shows up in the output, a password leaked. */
const ENV_PASSWORD = 'envPw-7c1e-RECOGNISABLE';
const FILE_PASSWORD = 'filePw-93ab-RECOGNISABLE';
const INLINE_PASSWORD = 'inlinePw-5d20-RECOGNISABLE';

const VALID = `
listen:
  postgres: 127.0.0.1:6432
tls:
  allowPlaintextFromLoopback: true
oidc:
  issuer: https://example.okta.com/oauth2/default
  audience: api://tokengate
  requiredScopes: [db.connect]
upstreams:
  app-pg:
    protocol: postgres
    host: db.internal
    port: 5433
    tls: require
    databases: { app: app_production, analytics: analytics }
    roles:
      reader: { user: agent_ro, password: \${TG_TEST_RO_PASSWORD} }
      writer: { user: agent_rw, passwordFile: secrets/app_rw }
grants:
  - name: reporting-agents
    match: { groups: [db-readers] }
    upstream: app-pg
    databases: [app, analytics]
    roles: [reader]
  - name: etl-service
    match: { clients: [0oa1etlservice], scopes: [db.write] }
    upstream: app-pg
    databases: ['*']
    roles: [reader, writer]
`;

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tg-cli-check-'));
  mkdirSync(join(dir, 'secrets'));
  writeFileSync(join(dir, 'secrets', 'app_rw'), `${FILE_PASSWORD}\n`);
  chmodSync(join(dir, 'secrets', 'app_rw'), 0o600);
  writeFileSync(join(dir, 'tokengate.yaml'), VALID);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function expectNoPasswords(r: CliResult): void {
  for (const secret of [ENV_PASSWORD, FILE_PASSWORD, INLINE_PASSWORD]) {
    expect(r.stdout).not.toContain(secret);
    expect(r.stderr).not.toContain(secret);
  }
}

describe('tokengate check-config', () => {
  test('a valid config prints listeners, upstreams and who may reach what, exit 0, and no password', async () => {
    const r = await runCli(['check-config', '--config', join(dir, 'tokengate.yaml')], { env: { TG_TEST_RO_PASSWORD: ENV_PASSWORD } });
    expect(r.stderr).toBe('');
    expectExit(r, 0);
    const out = r.stdout;
    expect(out).toContain(`tokengate configuration from ${join(dir, 'tokengate.yaml')}`);
    // Listeners.
    expect(out).toMatch(/Listeners:\n {2}postgres 127\.0\.0\.1:6432\n {2}mysql {4}\(off\)/);
    // Upstreams: address, TLS, aliases, roles with the password's source only.
    expect(out).toContain('app-pg: postgres db.internal:5433, tls require');
    expect(out).toContain('app -> app_production');
    expect(out).toContain('reader -> agent_ro (password from env TG_TEST_RO_PASSWORD)');
    expect(out).toContain(`writer -> agent_rw (password from file ${join(dir, 'secrets', 'app_rw')})`);
    // Who may reach what.
    expect(out).toContain('Grants (who may reach what):');
    expect(out).toContain('reporting-agents: tokens whose groups include db-readers');
    expect(out).toContain('etl-service: tokens from the client 0oa1etlservice and that carry the scope db.write');
    expect(out).toMatch(/etl-service:.*\n\s+-> app-pg \(postgres db\.internal:5433\)\n\s+databases: \* = app, analytics\n\s+roles: +reader \(user agent_ro\), writer \(user agent_rw\)/);
    expect(out.endsWith('\n')).toBe(true);
    expect(out.endsWith('\n\n')).toBe(false);
    expectNoPasswords(r);
  });

  test('a TLS key and an admin token file that others can read are warned about, without their contents', async () => {
    const key = join(dir, 'secrets', 'tls.key');
    const token = join(dir, 'secrets', 'admin.token');
    writeFileSync(key, 'KEY-CONTENT-RECOGNISABLE\n');
    writeFileSync(token, 'ADMIN-BEARER-RECOGNISABLE\n');
    chmodSync(key, 0o644);
    chmodSync(token, 0o640);
    const file = join(dir, 'exposed.yaml');
    writeFileSync(file, VALID.replace('tls:\n', `tls:\n  certFile: ${join(dir, 'secrets', 'tls.crt')}\n  keyFile: ${key}\n`)
      .replace('  postgres: 127.0.0.1:6432\n', `  postgres: 127.0.0.1:6432\n  admin: 127.0.0.1:9187\nadmin:\n  tokenFile: ${token}\nstate:\n  dir: ${dir}\n`));
    writeFileSync(join(dir, 'secrets', 'tls.crt'), 'not checked here\n');
    const r = await runCli(['check-config', '--config', file], { env: { TG_TEST_RO_PASSWORD: ENV_PASSWORD } });
    expectExit(r, 0);
    expect(r.stdout).toContain(`tls.keyFile ${key} is readable by group or others (mode 644); run chmod 600 on it`);
    expect(r.stdout).toContain(`admin.tokenFile ${token} is readable by group or others (mode 640); run chmod 600 on it`);
    expect(r.stdout + r.stderr).not.toMatch(/KEY-CONTENT|ADMIN-BEARER/);
    expectNoPasswords(r);
  });

  test('an invalid config prints every problem with its key path and exits non-zero', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, `
listen:
  postgres: 127.0.0.1:notaport
oidc:
  issuer: http://idp.example.com/oauth2/default
upstreams:
  app-pg:
    protocol: oracle
    host: db.internal
    databases: { app: app }
    roles:
      reader: { user: agent_ro, password: ${INLINE_PASSWORD} }
      writer: { user: agent_rw, password: \${TG_TEST_UNSET_VARIABLE} }
grants:
  - name: everyone
    match: {}
    upstream: missing-upstream
    databases: [app]
    roles: [reader]
`);
    const r = await runCli(['check-config', '-c', bad], { env: { TG_TEST_RO_PASSWORD: ENV_PASSWORD } });
    expectExit(r, 2);
    expect(r.stdout).toBe('');
    const err = r.stderr;
    expect(err).toMatch(new RegExp(`^invalid configuration ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(\\d+ problems\\):`));
    const problems = err.split('\n').filter((l) => l.startsWith('  - '));
    const paths = problems.map((l) => l.slice(4, l.indexOf(':', 4)));
    expect(paths).toEqual(expect.arrayContaining([
      'listen.postgres',
      'oidc.audience',
      'oidc.issuer',
      'upstreams.app-pg.protocol',
      'upstreams.app-pg.roles.reader.password',
      'upstreams.app-pg.roles.writer.password',
      'grants[0].match',
      'grants[0].upstream',
    ]));
    expect(err).toContain('upstreams.app-pg.roles.writer.password: environment variable TG_TEST_UNSET_VARIABLE is not set');
    expect(err).toMatch(/upstreams\.app-pg\.roles\.reader\.password: inline passwords are not accepted/);
    expect(err).toMatch(/grants\[0\]\.upstream: upstream "missing-upstream" is not defined/);
    expectNoPasswords(r);
  });

  test('a config that is not YAML is reported without quoting its text', async () => {
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, `listen:\n  postgres: "127.0.0.1:6432\noidc: { issuer: "${INLINE_PASSWORD}\n`);
    const r = await runCli(['check-config', '--config', broken]);
    expectExit(r, 2);
    expect(r.stderr).toMatch(/YAML syntax error/);
    expectNoPasswords(r);
  });

  test('without --config it reads ./tokengate.yaml from the working directory', async () => {
    const r = await runCli(['check-config'], { cwd: dir, env: { TG_TEST_RO_PASSWORD: ENV_PASSWORD } });
    expect(r.stderr).toBe('');
    expectExit(r, 0);
    expect(r.stdout).toContain('tokengate configuration from ./tokengate.yaml');
    // Relative paths inside the config are relative to the config's directory.
    expect(r.stdout).toContain(`password from file ${join(dir, 'secrets', 'app_rw')}`);
    expectNoPasswords(r);
  });

  test('without --config and no ./tokengate.yaml it says where it looked, and exits 2', async () => {
    // The second default location must be absent on a test machine for this to be meaningful.
    expect(existsSync('/etc/tokengate/tokengate.yaml')).toBe(false);
    const empty = mkdtempSync(join(tmpdir(), 'tg-cli-empty-'));
    try {
      const r = await runCli(['check-config'], { cwd: empty });
      expectExit(r, 2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('no config file found; looked in ./tokengate.yaml, /etc/tokengate/tokengate.yaml. Pass --config /path/to/tokengate.yaml');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test('a config path that does not exist is named with the reason', async () => {
    const r = await runCli(['check-config', '--config', join(dir, 'nope.yaml')]);
    expectExit(r, 2);
    expect(r.stderr).toContain(join(dir, 'nope.yaml'));
    expect(r.stderr).toContain('cannot read the config file (ENOENT)');
  });
});
