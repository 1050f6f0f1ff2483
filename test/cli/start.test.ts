/**
 * `tokengate start` as an operator runs it: the real bin/tokengate.js (built by
 * test/globalSetup.ts) in a child process, in front of a throwaway PostgreSQL that requires
 * SCRAM, with the dev issuer running in this test process; psql and node-postgres connect
 * through it with tokens as passwords.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import { startPgCluster, type PgCluster } from '../helpers/pgCluster';
import { waitFor } from '../helpers/waitFor';

const ROOT = resolve(__dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'tokengate.js');
const AUDIENCE = 'api://tokengate';
const RO_PASSWORD = 'roPw-0c9d-RECOGNISABLE';
const CLIENT_SECRET = 'reporting-dev-secret-RECOGNISABLE';

/** A gateway process: its output so far, and what it took to start it. */
interface GatewayProcess {
  child: ChildProcessWithoutNullStreams;
  output(): { stdout: string; stderr: string };
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startCli(args: string[], env: Record<string, string>): GatewayProcess {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, TOKENGATE_LOG_LEVEL: 'info', ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('close', (code, signal) => res({ code, signal })));
  return { child, output: () => ({ stdout, stderr }), exited };
}

/** Resolves with the listener's port from the operational log line "postgres listener on HOST:PORT". */
async function listenerPort(g: GatewayProcess, timeoutMs = 60_000): Promise<number> {
  const reported = await waitFor(() => /postgres listener on 127\.0\.0\.1:(\d+)/.exec(g.output().stderr) ?? (g.child.exitCode !== null && 'exited'), {
    what: 'the gateway to report its listener', timeoutMs, intervalMs: 50, detail: () => `its output:\n${JSON.stringify(g.output(), null, 2)}`,
  });
  if (reported === 'exited') throw new Error(`the gateway exited without reporting its listener; its output:\n${JSON.stringify(g.output(), null, 2)}`);
  return Number(reported[1]);
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: Record<string, string>): Promise<RunResult> {
  return new Promise((res, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

function psql(port: number, token: string, sql: string): Promise<RunResult> {
  return run('psql', [`host=127.0.0.1 port=${port} user=reader dbname=app sslmode=disable`, '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    PGPASSWORD: token,
    PGCONNECT_TIMEOUT: '30',
  });
}

function auditEvents(stdout: string): Array<Record<string, unknown>> {
  return stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Checks the exit status; on a mismatch the failure shows the whole output, which says why. */
function expectExit(r: RunResult, code: number): void {
  expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toMatchObject({ code });
}

let cluster: PgCluster;
let issuer: DevIssuer;
let dir: string;

function writeConfig(name: string, listen: string, extra = ''): string {
  const file = join(dir, name);
  writeFileSync(file, `
listen:
  postgres: ${listen}
${extra}
oidc:
  issuer: ${issuer.issuer}
  audience: ${AUDIENCE}
  requiredScopes: [db.connect]
  maxTokenLifetime: 1h
  fetchTimeout: 15s
  devIssuer: true
upstreams:
  app-pg:
    protocol: postgres
    host: 127.0.0.1
    port: ${cluster.port}
    tls: disable
    databases: { app: app }
    roles:
      reader: { user: agent_ro, password: \${TG_TEST_RO_PASSWORD} }
grants:
  - name: reporting-agents
    match: { groups: [db-readers] }
    upstream: app-pg
    databases: [app]
    roles: [reader]
audit:
  file: stdout
  queries: true
session:
  authTimeout: 30s
`);
  return file;
}

beforeAll(async () => {
  cluster = await startPgCluster();
  await cluster.psql(`CREATE ROLE agent_ro LOGIN PASSWORD '${RO_PASSWORD}'; GRANT ALL ON DATABASE app TO agent_ro;`);
  issuer = await startDevIssuer({
    audience: AUDIENCE,
    clients: [{ clientId: 'svc-reporting', clientSecret: CLIENT_SECRET, groups: ['db-readers'], scopes: ['db.connect'] }],
  });
  dir = mkdtempSync(join(tmpdir(), 'tg-cli-start-'));
}, 120_000);

afterAll(async () => {
  await issuer?.stop();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('tokengate start', () => {
  test('serves psql with a token, refuses a bad token, stops on SIGTERM with exit 0, and never logs a secret', async () => {
    const g = startCli(['start', '--config', writeConfig('tokengate.yaml', '127.0.0.1:0')], { TG_TEST_RO_PASSWORD: RO_PASSWORD });
    const tokens: string[] = [];
    try {
      const port = await listenerPort(g);

      const token = await issuer.mintToken({ clientId: 'svc-reporting' });
      tokens.push(token);
      const ok = await psql(port, token, 'select current_user');
      expect(ok.stderr).toBe('');
      expectExit(ok, 0);
      expect(ok.stdout.trim()).toBe('agent_ro'); // the gateway-held role, logged in with SCRAM

      const expired = await issuer.mintToken({ clientId: 'svc-reporting', issuedAtSec: Math.floor(Date.now() / 1000) - 1200, expiresInSec: -600 });
      tokens.push(expired);
      const refused = await psql(port, expired, 'select 1');
      expectExit(refused, 2);
      expect(refused.stderr).toMatch(/FATAL: {2}.*the access token expired at .*fetch a new token from your issuer and reconnect/);

      const [h, p] = token.split('.');
      const forged = `${h}.${p}.${Buffer.alloc(256, 7).toString('base64url')}`;
      tokens.push(forged);
      const badSignature = await psql(port, forged, 'select 1');
      expectExit(badSignature, 2);
      expect(badSignature.stderr).toMatch(/FATAL: {2}.*signature does not verify/);

      // A session open during SIGTERM is ended by the gateway, and the process still exits 0.
      const open = new Client({ host: '127.0.0.1', port, user: 'reader', database: 'app', password: token });
      const clientError = new Promise<Error>((res) => open.on('error', res));
      await open.connect();
      expect((await open.query('select 41 + 1 as n')).rows).toEqual([{ n: 42 }]);

      g.child.kill('SIGTERM');
      expect(await g.exited).toEqual({ code: 0, signal: null });
      expect((await clientError).message).toMatch(/shutting down/);
      await open.end().catch(() => undefined);
    } finally {
      if (g.child.exitCode === null && g.child.signalCode === null) g.child.kill('SIGKILL');
      await g.exited;
    }

    const { stdout, stderr } = g.output();
    // Operational log on stderr, audit JSON lines on stdout.
    expect(stderr).toMatch(/postgres listener on 127\.0\.0\.1:\d+/);
    expect(stderr).toMatch(/SIGTERM received: no new connections; sessions may finish/);
    const events = auditEvents(stdout);
    expect(events.find((e) => e.event === 'connection_accepted')).toMatchObject({ sub: 'svc-reporting', cid: 'svc-reporting', grant: 'reporting-agents', role: 'reader', database: 'app' });
    expect(events.find((e) => e.event === 'query' && e.sql === 'select current_user')).toMatchObject({ sub: 'svc-reporting', tag: 'SELECT 1' });
    const rejections = events.filter((e) => e.event === 'connection_rejected').map((e) => e.reason);
    expect(rejections).toEqual(expect.arrayContaining(['expired', 'bad_signature']));

    const all = stdout + stderr;
    for (const t of tokens) {
      expect(all).not.toContain(t);
      expect(all).not.toContain(t.split('.')[2]);
    }
    expect(all).not.toContain(RO_PASSWORD);
    expect(all).not.toContain(CLIENT_SECRET);
    expect(all).not.toContain(cluster.superuserPassword);
  }, 180_000);

  test('an address that is already in use is reported with the setting to change, exit 2', async () => {
    const g = startCli(['start', '--config', writeConfig('busy.yaml', `127.0.0.1:${cluster.port}`)], { TG_TEST_RO_PASSWORD: RO_PASSWORD });
    const { code } = await g.exited;
    expect(code).toBe(2);
    expect(g.output().stderr).toContain(`tokengate could not start: cannot listen on 127.0.0.1:${cluster.port} (EADDRINUSE): another process is already listening there; stop it or choose another port in listen.postgres`);
    expect(g.output().stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  test('an unreadable TLS certificate is reported with the setting to change, exit 2', async () => {
    const missing = join(dir, 'missing.crt');
    const file = writeConfig('tls.yaml', '127.0.0.1:0', `tls:\n  certFile: ${missing}\n  keyFile: ${join(dir, 'missing.key')}`);
    const g = startCli(['start', '--config', file], { TG_TEST_RO_PASSWORD: RO_PASSWORD });
    const { code } = await g.exited;
    expect(code).toBe(2);
    expect(g.output().stderr).toContain(`tokengate could not start: cannot open ${missing} (ENOENT); check tls.certFile: the path and the permissions of the tokengate user`);
  });

  test('an invalid config is refused before anything listens, exit 2, without echoing the password', async () => {
    const file = writeConfig('unset.yaml', '127.0.0.1:0');
    const g = startCli(['start', '--config', file], { TG_TEST_RO_PASSWORD: '' });
    const { code } = await g.exited;
    expect(code).toBe(2);
    expect(g.output().stderr).toContain('upstreams.app-pg.roles.reader.password: environment variable TG_TEST_RO_PASSWORD is set but empty');
    expect(g.output().stderr).not.toContain('listener on');
  });
});
