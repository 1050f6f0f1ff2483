/**
 * The leak check against `tokengate start` as an operator runs it (issue 15, section 5): the real
 * bin/tokengate.js in a child process at log level debug, both listeners and the admin API, the
 * upstream passwords in files, the admin bearer in a file. A normal session and every hostile
 * token case run through each listener, the admin API is called, the process is stopped with
 * SIGTERM; then its whole stdout (audit) and stderr (operational log, and anything a crash
 * would print), the admin API's answers and the clients' errors are grepped for every token,
 * password and secret.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import { AUDIENCE, CLIENTS, type Protocol } from '../integration/harness';
import { provisionMysql, provisionPostgres, type ProvisionedMysql, type ProvisionedPostgres } from '../integration/upstreams';
import { waitFor } from '../helpers/waitFor';
import { CASES, REFUSED, connect, makeCtx } from './cases';
import { b64url, claimsOf } from './forge';

const BIN = resolve(__dirname, '..', '..', 'bin', 'tokengate.js');

let pg: ProvisionedPostgres;
let my: ProvisionedMysql;
let issuer: DevIssuer;
let other: DevIssuer;
let dir: string;

beforeAll(async () => {
  pg = await provisionPostgres();
  my = await provisionMysql();
  issuer = await startDevIssuer({ audience: AUDIENCE, clients: CLIENTS });
  other = await startDevIssuer({ audience: AUDIENCE, clients: CLIENTS });
  dir = mkdtempSync(join(tmpdir(), 'tg-security-process-'));
}, 120_000);

afterAll(async () => {
  await other?.stop();
  await issuer?.stop();
  await my?.stop();
  await pg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function secretFile(name: string, value: string): string {
  const file = join(dir, name);
  writeFileSync(file, `${value}\n`, { mode: 0o600 });
  return file;
}

function configFile(adminBearer: string): string {
  const file = join(dir, 'tokengate.yaml');
  const upstream = (name: string, protocol: Protocol, u: ProvisionedPostgres | ProvisionedMysql): string => `
  ${name}:
    protocol: ${protocol}
    host: ${u.host}
    port: ${u.port}
    tls: disable
    databases: { app: ${u.names.app} }
    roles:
      reader: { user: ${u.names.ro}, passwordFile: ${secretFile(`${name}-ro`, u.passwords.ro)} }
      writer: { user: ${u.names.rw}, passwordFile: ${secretFile(`${name}-rw`, u.passwords.rw)} }`;
  writeFileSync(file, `
listen: { postgres: 127.0.0.1:0, mysql: 127.0.0.1:0, admin: 127.0.0.1:0 }
oidc:
  issuer: ${issuer.issuer}
  audience: ${AUDIENCE}
  clockSkew: 5s
  maxTokenLifetime: 1h
  requiredScopes: [db.connect]
  devIssuer: true
upstreams:${upstream('app-pg', 'postgres', pg)}${upstream('app-my', 'mysql', my)}
grants:
  - { name: readers-pg, match: { groups: [db-readers] }, upstream: app-pg, databases: [app], roles: [reader] }
  - { name: readers-my, match: { groups: [db-readers] }, upstream: app-my, databases: [app], roles: [reader] }
admin: { tokenFile: ${secretFile('admin-token', adminBearer)} }
state: { dir: ${dir} }
audit: { file: stdout, queries: true }
log: { level: debug }
`);
  return file;
}

interface GatewayProcess {
  child: ChildProcessWithoutNullStreams;
  output(): { stdout: string; stderr: string };
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startProcess(config: string): GatewayProcess {
  const child = spawn(process.execPath, [BIN, 'start', '--config', config], { env: { ...process.env, TOKENGATE_LOG_LEVEL: 'debug' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('close', (code, signal) => res({ code, signal })));
  return { child, output: () => ({ stdout, stderr }), exited };
}

test('nothing tokengate start printed, answered or told a client contains a token, a password or a secret', async () => {
  const adminBearer = randomBytes(24).toString('hex');
  const g = startProcess(configFile(adminBearer));
  const sent: string[] = [];
  const told: string[] = [];
  const token = async (clientId = 'svc-reporting', o = {}): Promise<string> => {
    const t = await issuer.mintToken({ clientId, ...o });
    sent.push(t);
    return t;
  };
  const ctx = await makeCtx(issuer, token, other);
  try {
    const ports = await waitFor(() => {
      const { stderr } = g.output();
      const port = (what: string): number | undefined => Number(new RegExp(`${what} on (?:http://)?127\\.0\\.0\\.1:(\\d+)`).exec(stderr)?.[1]) || undefined;
      const p = { postgres: port('postgres listener'), mysql: port('mysql listener'), admin: port('admin API') };
      if (g.child.exitCode !== null) throw new Error(`tokengate start exited:\n${stderr}`);
      return p.postgres && p.mysql && p.admin ? (p as Record<Protocol | 'admin', number>) : undefined;
    }, { what: 'the listeners and the admin API', timeoutMs: 60_000, detail: () => g.output().stderr });

    for (const protocol of ['postgres', 'mysql'] as const) {
      const attempt = async (password: string) => {
        sent.push(password);
        const outcome = await connect(protocol, ports[protocol], password);
        if (!outcome.ok) told.push(outcome.message);
        return outcome;
      };
      expect(await attempt(await token())).toEqual({ ok: true });
      for (const tc of CASES) {
        expect({ case: tc.name, outcome: await attempt(await tc.make(ctx)) }).toMatchObject({ outcome: { ok: false, code: REFUSED[protocol], message: expect.stringMatching(tc.text) } });
      }
      const real = await token();
      const [head, , sig] = real.split('.');
      expect(await attempt(`${head}.${b64url({ ...claimsOf(real), pad: 'A'.repeat(100 * 1024) })}.${sig}`)).toMatchObject({ ok: false, message: expect.stringMatching(/too large for an access token/) });
    }

    for (const path of ['/sessions', '/metrics', '/readyz']) {
      const res = await fetch(`http://127.0.0.1:${ports.admin}${path}`, { headers: { authorization: `Bearer ${adminBearer}` } });
      told.push(await res.text());
    }
    const wrongBearer = randomBytes(24).toString('hex');
    sent.push(wrongBearer);
    told.push(await (await fetch(`http://127.0.0.1:${ports.admin}/sessions`, { headers: { authorization: `Bearer ${wrongBearer}` } })).text());

    g.child.kill('SIGTERM');
    expect(await g.exited).toEqual({ code: 0, signal: null });
  } finally {
    await ctx.stop();
    if (g.child.exitCode === null && g.child.signalCode === null) g.child.kill('SIGKILL');
    await g.exited;
  }

  const { stdout, stderr } = g.output();
  const rejected = stdout.split('\n').filter((l) => l.includes('"connection_rejected"')).length;
  expect(rejected).toBeGreaterThanOrEqual(2 * (CASES.length + 1));
  expect(stderr).toMatch(/SIGTERM received/);

  const secrets = [
    pg.passwords.ro, pg.passwords.rw, my.passwords.ro, my.passwords.rw, adminBearer,
    ...CLIENTS.map((c) => c.clientSecret), ...sent,
  ].filter((s) => s.length >= 8);
  const forms = (s: string): string[] => {
    const parts = s.split('.');
    return parts.length === 3 ? [s, parts[2], `${parts[0]}.${parts[1]}`].filter((f) => f.length >= 8) : [s];
  };
  const sources: [string, string][] = [['stdout', stdout], ['stderr', stderr], ...told.map((t, i): [string, string] => [`answer #${i}`, t])];
  const leaks = secrets.flatMap((s, i) => forms(s).flatMap((f) => sources.filter(([, text]) => text.includes(f)).map(([where]) => `secret #${i} in ${where}`)));
  expect(leaks).toEqual([]);
}, 180_000);
