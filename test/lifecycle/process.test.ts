/**
 * The gateway process through its life as systemd runs it: READY=1 and watchdog pings on a real
 * notify socket; SIGHUP reloads (a rotated upstream password, a broken file), with RELOADING=1
 * and READY=1 around it; SIGUSR2 reopens the audit file after rotation; an audit file that
 * cannot be written refuses new sessions; SIGTERM lets a transaction finish and exits 0; a second
 * SIGTERM ends at once. Real PostgreSQL (SCRAM), node-postgres and psql, the dev issuer.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Client } from 'pg';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import { startPgCluster, type PgCluster } from '../helpers/pgCluster';
import { waitFor } from '../helpers/waitFor';
import { run } from '../integration/clients';
import { listenForNotify, logLines, ROOT, startGatewayProcess, type GatewayProcess, type NotifySocket } from './helpers';

const AUDIENCE = 'api://tokengate';
const ROLE = 'lifetest_rot';
const password = (): string => `lifetest_${randomBytes(12).toString('hex')}`;

let cluster: PgCluster;
let issuer: DevIssuer;
let dir: string;
let credentials: string;
let configFile: string;
let auditFile: string;
let currentPassword: string;
const passwords: string[] = [];

function configYaml(o: { broken?: boolean; group?: string } = {}): string {
  return `
listen:
  postgres: 127.0.0.1:0
oidc:
  issuer: ${issuer.issuer}
  audience: ${AUDIENCE}
  requiredScopes: [db.connect]
  maxTokenLifetime: 1h
  devIssuer: true
upstreams:
  app-pg:
    protocol: postgres
    host: 127.0.0.1
    port: ${cluster.port}
    tls: disable
    pool: { maxConnections: 5 }
    databases: { app: app }
    roles:
      reader:
        user: ${ROLE}
        passwordFile: \${CREDENTIALS_DIRECTORY}/pg-reader
grants:
  - name: reporting-agents
    match: { groups: [${o.group ?? 'db-readers'}] }
    upstream: app-pg
    databases: [app]
    roles: [reader]
${o.broken ? 'limits: { maxClientConnections: many }\n' : ''}audit:
  file: ${auditFile}
  queries: true
session:
  shutdownGrace: 30s
`;
}

async function connect(port: number): Promise<Client> {
  const c = new Client({ host: '127.0.0.1', port, user: 'reader', database: 'app', password: await issuer.mintToken({ clientId: 'svc-reporting' }) });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

const upstreamConnections = async (): Promise<number> => Number(await cluster.psql(`select count(*) from pg_stat_activity where usename = '${ROLE}'`));

beforeAll(async () => {
  cluster = await startPgCluster();
  currentPassword = password();
  passwords.push(currentPassword);
  await cluster.psql(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${currentPassword}'; GRANT ALL ON DATABASE app TO ${ROLE};`);
  issuer = await startDevIssuer({
    audience: AUDIENCE,
    clients: [{ clientId: 'svc-reporting', clientSecret: 'lifetest-client-secret', groups: ['db-readers'], scopes: ['db.connect'] }],
  });
  dir = mkdtempSync(join(tmpdir(), 'tokengate-lifetest-'));
  credentials = join(dir, 'credentials');
  mkdirSync(credentials);
  writeFileSync(join(credentials, 'pg-reader'), `${currentPassword}\n`, { mode: 0o600 });
  auditFile = join(dir, 'audit', 'audit.jsonl');
  configFile = join(dir, 'tokengate.yaml');
  writeFileSync(configFile, configYaml());
}, 120_000);

afterAll(async () => {
  await issuer?.stop();
  await cluster?.stop(); // the cluster and its roles go with it
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('one gateway process from start to SIGTERM', () => {
  let notify: NotifySocket;
  let g: GatewayProcess;
  let port: number;

  beforeAll(async () => {
    notify = await listenForNotify(join(dir, 'notify.sock'));
    g = startGatewayProcess(configFile, { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '400000', CREDENTIALS_DIRECTORY: credentials });
    port = await g.port();
  }, 90_000);

  afterAll(async () => {
    if (g.child.exitCode === null) g.child.kill('SIGKILL');
    notify.stop();
    const auditDir = dirname(auditFile);
    const audits = readdirSync(auditDir).filter((f) => !f.endsWith('.gz')).map((f) => join(auditDir, f)).filter((f) => statSync(f).isFile());
    const output = g.stdout() + g.stderr() + audits.map((f) => readFileSync(f, 'utf8')).join('');
    for (const p of passwords) expect(output).not.toContain(p);
  });

  test('READY=1 once the listener is bound and the keys are fetched, then WATCHDOG=1 every WATCHDOG_USEC/2', async () => {
    const ready = await notify.waitFor('READY=1');
    expect(notify.messages()[ready]).toMatch(/STATUS=listening: postgres on 127\.0\.0\.1:\d+/);
    expect(issuer.requestCount('v1/keys')).toBeGreaterThan(0);
    const first = await notify.waitFor('WATCHDOG=1', ready);
    await notify.waitFor('WATCHDOG=1', first + 1);
    // The operational log is JSON lines on a stderr that is not a terminal.
    expect(logLines(g.stderr()).some((l) => l.level === 'info' && /postgres listener on/.test(l.message))).toBe(true);
  });

  test('a password file read through $CREDENTIALS_DIRECTORY; the audit file is created 0600', async () => {
    const c = await connect(port);
    expect((await c.query('select current_user as u')).rows).toEqual([{ u: ROLE }]);
    await c.end();
    await waitFor(() => readFileSync(auditFile, 'utf8').includes('"connection_accepted"'), { what: 'the audit record' });
    expect(statSync(auditFile).mode & 0o777).toBe(0o600);
  });

  test('SIGHUP after a password rotation: RELOADING=1 then READY=1, new sessions log in with the new password, the old pool drains', async () => {
    const kept = await connect(port);
    const gone = await connect(port);
    await gone.end(); // its upstream connection stays idle in the pool
    await waitFor(async () => (await upstreamConnections()) === 2, { what: 'one busy and one idle upstream connection' });

    currentPassword = password();
    passwords.push(currentPassword);
    await cluster.psql(`ALTER ROLE ${ROLE} PASSWORD '${currentPassword}'`);
    writeFileSync(join(credentials, 'pg-reader'), `${currentPassword}\n`);
    const before = notify.messages().length;
    g.signal('SIGHUP');
    const reloading = await notify.waitFor('RELOADING=1', before);
    expect(notify.messages()[reloading]).toMatch(/MONOTONIC_USEC=\d+/);
    await notify.waitFor('READY=1', reloading);
    expect(g.stderr()).toMatch(/config reloaded from .*: changed upstreams\.app-pg/);
    expect(g.stderr()).toMatch(/upstream settings changed: pools app-pg\/reader\/app close as their sessions end/);

    // The idle connection of the old pool is closed now; the busy one when its session ends.
    await waitFor(async () => (await upstreamConnections()) === 1, { what: 'the idle connection of the old pool to close' });
    expect((await kept.query('select 1 as x')).rows).toEqual([{ x: 1 }]);
    const fresh = await connect(port);
    expect((await fresh.query('select current_user as u')).rows).toEqual([{ u: ROLE }]);
    await kept.end();
    await waitFor(async () => (await upstreamConnections()) === 1, { what: 'the old pool\'s last connection to close on release' });
    await fresh.end();
  });

  test('SIGHUP with a broken file keeps the running config and logs every problem', async () => {
    const live = await connect(port);
    writeFileSync(configFile, configYaml({ broken: true }));
    const before = notify.messages().length;
    const sighups = (): Record<string, unknown>[] => readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.method === 'SIGHUP');
    const earlier = sighups().length;
    g.signal('SIGHUP');
    await notify.waitFor('READY=1', before);
    const failure = logLines(g.stderr()).find((l) => l.level === 'error' && l.message.startsWith('config reload failed; the running config is kept'));
    expect(failure?.message).toMatch(/limits\.maxClientConnections/);
    // Audit records are written in batches: wait for the signal's record.
    await waitFor(() => sighups().length > earlier, { what: 'the audit record of the reload' });
    const record = sighups().at(-1)!;
    expect(record).toMatchObject({ event: 'admin_request', caller: 'signal', status: 400 });
    expect(record.action as string).toMatch(/^reload refused \(\d+ problem\(s\)\)$/);
    expect((await live.query('select 1 as x')).rows).toEqual([{ x: 1 }]);
    const fresh = await connect(port);
    await fresh.end();
    await live.end();
    writeFileSync(configFile, configYaml());
  });

  test('SIGHUP with the grant taken away ends its live sessions within a second with 28000; given back, it admits again', async () => {
    const live = await connect(port);
    const gone = new Promise<{ code?: string; message: string }>((resolve) => live.once('error', resolve));
    writeFileSync(configFile, configYaml({ group: 'lifetest-nobody' }));
    const started = Date.now();
    g.signal('SIGHUP');
    const err = await gone;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(err.code).toBe('28000');
    expect(err.message).toMatch(/^your grant was withdrawn by a configuration change and tokengate ended this session: no grant matches your token/);
    await waitFor(() => readFileSync(auditFile, 'utf8').includes('"reason":"grant_withdrawn"'), { what: 'the session_end record' });
    writeFileSync(configFile, configYaml());
    const before = notify.messages().length;
    g.signal('SIGHUP');
    await notify.waitFor('READY=1', before);
    const again = await connect(port);
    await again.end();
  });

  test('examples/logrotate/tokengate rotates the audit file: renamed, SIGUSR2, tokengate creates the new file', async () => {
    const example = readFileSync(join(ROOT, 'examples', 'logrotate', 'tokengate'), 'utf8');
    const conf = join(dir, 'logrotate.conf');
    writeFileSync(conf, example.replaceAll('/var/log/tokengate/audit.jsonl', auditFile)
      .replace(/systemctl kill --kill-who=main --signal=USR2 tokengate\.service/, `kill -USR2 ${g.child.pid}`), { mode: 0o644 });
    const before = (await connect(port));
    await before.end();
    await waitFor(() => readFileSync(auditFile, 'utf8').includes('"session_end"'), { what: 'a record to rotate' });
    const r = await run('/usr/sbin/logrotate', ['--force', '--state', join(dir, 'logrotate.state'), conf]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(readFileSync(`${auditFile}.1`, 'utf8')).toContain('"session_end"');
    await waitFor(async () => {
      const c = await connect(port);
      await c.end();
      return existsSync(auditFile) && readFileSync(auditFile, 'utf8').includes('"connection_accepted"');
    }, { what: 'tokengate to write to a new audit file' });
    expect(statSync(auditFile).mode & 0o777).toBe(0o600);
  });

  test('SIGUSR2 reopens the audit file after rotation; while it cannot be written new sessions are refused', async () => {
    renameSync(auditFile, `${auditFile}.manual`);
    g.signal('SIGUSR2');
    await waitFor(() => g.stderr().includes('SIGUSR2 received'), { what: 'the SIGUSR2 log line' });
    const c = await waitFor(async () => {
      // The reopen is asynchronous: a session after it is recorded in the new file.
      const s = await connect(port);
      await s.end();
      try {
        return readFileSync(auditFile, 'utf8').includes('"connection_accepted"');
      } catch {
        return false;
      }
    }, { what: 'a record in the reopened audit file' });
    expect(c).toBe(true);
    expect(statSync(auditFile).mode & 0o777).toBe(0o600);

    // Something that is not a writable file where the audit log should be: fail closed.
    rmSync(auditFile);
    mkdirSync(auditFile);
    g.signal('SIGUSR2');
    await waitFor(() => /cannot open the audit log .*audit\.jsonl/.test(g.stderr()), { what: 'the audit failure on the operational log' });
    const refused = (await connect(port).catch((e: unknown) => e)) as { code?: string; message: string };
    expect(refused.code).toBe('08001');
    expect(refused.message).toMatch(/tokengate cannot write its audit log, so it accepts no new sessions until an operator fixes it/);
    const viaPsql = await run('psql', [`host=127.0.0.1 port=${port} user=reader dbname=app sslmode=disable`, '-X', '-c', 'select 1'],
      { PGPASSWORD: await issuer.mintToken({ clientId: 'svc-reporting' }) });
    expect(viaPsql.code).not.toBe(0);
    expect(viaPsql.stderr).toMatch(/cannot write its audit log/);

    rmdirSync(auditFile);
    const back = await waitFor(async () => connect(port).catch(() => undefined), { what: 'sessions to be admitted again', timeoutMs: 5000, intervalMs: 200 });
    await back.end();
    expect(g.stderr()).toMatch(/audit\.jsonl is writable again/);
  });

  test('SIGTERM: STOPPING=1, no new connections, a running transaction finishes, its session then ends with 57P01, exit 0', async () => {
    const tx = await connect(port);
    const idle = await connect(port);
    const idleGone = new Promise<{ code?: string }>((resolve) => idle.once('error', resolve));
    const txGone = new Promise<{ code?: string; message: string }>((resolve) => tx.once('error', resolve));
    await tx.query('begin');
    await tx.query('create temporary table lifetest_t (x int)');
    const before = notify.messages().length;
    g.signal('SIGTERM');
    await notify.waitFor('STOPPING=1', before);
    expect((await idleGone).code).toBe('57P01');
    const refused = (await connect(port).catch((e: unknown) => e)) as { code?: string };
    expect(refused.code).toBe('ECONNREFUSED');
    await tx.query('insert into lifetest_t values (1)');
    expect((await tx.query('commit')).command).toBe('COMMIT');
    const err = await txGone;
    expect(err.code).toBe('57P01');
    expect(err.message).toBe('tokengate is shutting down; reconnect in a moment');
    expect(await g.exited).toEqual({ code: 0, signal: null });
    expect(g.stderr()).toMatch(/SIGTERM received: no new connections; sessions may finish for 30s/);
    await waitFor(async () => (await upstreamConnections()) === 0, { what: 'the pools to be closed' });
  });
});

test('a second SIGTERM ends the sessions at once, cancelling the running statement upstream, and the process exits 0', async () => {
  const g = startGatewayProcess(configFile, { CREDENTIALS_DIRECTORY: credentials });
  const port = await g.port();
  const tx = await connect(port);
  const gone = new Promise<{ code?: string }>((resolve) => tx.once('error', resolve));
  await tx.query('begin');
  const sleeper = await connect(port);
  const sleeping = sleeper.query('select pg_sleep(30) as lifetest_sleep').catch((e: { code?: string }) => e);
  const running = async (): Promise<number> => Number(await cluster.psql(`select count(*) from pg_stat_activity where query like '%lifetest_sleep%' and state = 'active' and pid <> pg_backend_pid()`));
  await waitFor(async () => (await running()) === 1, { what: 'pg_sleep to run upstream' });
  g.signal('SIGTERM');
  await waitFor(() => g.stderr().includes('SIGTERM received'), { what: 'the first SIGTERM to be handled' });
  const started = Date.now();
  g.signal('SIGTERM');
  expect((await gone).code).toBe('57P01');
  expect(await g.exited).toEqual({ code: 0, signal: null });
  expect(Date.now() - started).toBeLessThan(5000);
  expect(g.stderr()).toMatch(/SIGTERM received again: ending the remaining sessions now/);
  expect(((await sleeping) as { code?: string }).code).toMatch(/^(57014|57P01)$/);
  expect(await running()).toBe(0);
});
