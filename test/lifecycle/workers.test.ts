/**
 * `workers: 2` as systemd runs it: the real bin/tokengate.js, a notify socket, real PostgreSQL
 * and node-postgres. Both workers serve connections from the shared listener (which process
 * holds each client connection is read from /proc); a worker killed by its PID is restarted and
 * the gateway keeps serving; the admin listener is shared too; a worker that cannot start (its port
 * taken) stops the gateway with exit code 2; SIGHUP to the supervisor reloads every worker; SIGTERM
 * drains every worker and the supervisor exits 0, a second SIGTERM ends the sessions at once;
 * READY=1 comes once, from the supervisor, when both are ready.
 * What needs shared state across workers (revocations, kills, cancel routing, caps) is tested
 * with Redis in the shared-state suites, not here.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import { startPgCluster, type PgCluster } from '../helpers/pgCluster';
import { startRedis, type RedisServer } from '../helpers/redisServer';
import { waitFor } from '../helpers/waitFor';
import { listenForNotify, logLines, startGatewayProcess, type GatewayProcess, type NotifySocket } from './helpers';

const AUDIENCE = 'api://tokengate';
const ROLE = 'workers_reader';

let cluster: PgCluster;
let redis: RedisServer;
let issuer: DevIssuer;
let dir: string;
let configFile: string;
let auditFile: string;
let notify: NotifySocket;
let g: GatewayProcess;
let port: number;
const password = `workers_${randomBytes(12).toString('hex')}`;
const ADMIN_TOKEN = `admin-${randomBytes(16).toString('hex')}`;

function configYaml(group = 'db-readers', postgres = '127.0.0.1:0', workers = 2): string {
  return `
listen:
  postgres: ${postgres}
  admin: 127.0.0.1:0
state:
  dir: ${dir}/state
admin:
  tokenFile: ${dir}/admin-token
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
      reader: { user: ${ROLE}, password: \${WORKERS_PG_PASSWORD} }
grants:
  - name: reporting-agents
    match: { groups: [${group}] }
    upstream: app-pg
    databases: [app]
    roles: [reader]
audit:
  file: ${auditFile}
session:
  shutdownGrace: 30s
workers: ${workers}
redis:
  url: ${redis.url}
`;
}

async function connect(to = port): Promise<Client> {
  const c = new Client({ host: '127.0.0.1', port: to, user: 'reader', database: 'app', password: await issuer.mintToken({ clientId: 'svc-reporting' }) });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** The PIDs of the workers the supervisor reported started, in order. */
function workerPids(stderr: string): Map<number, number> {
  const pids = new Map<number, number>();
  for (const m of stderr.matchAll(/worker (\d+) started \(pid (\d+)\)/g)) pids.set(Number(m[1]), Number(m[2]));
  return pids;
}

/** Which of `pids` holds the gateway's end of the TCP connection from local port `clientPort` (from /proc/net/tcp and /proc/PID/fd). */
function ownerOf(pids: number[], clientPort: number): number | undefined {
  const hexPort = (p: number): string => p.toString(16).toUpperCase().padStart(4, '0');
  const rows = readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  const row = rows.find((r) => r[1]?.endsWith(`:${hexPort(port)}`) && r[2]?.endsWith(`:${hexPort(clientPort)}`));
  if (!row) return undefined;
  const socket = `socket:[${row[9]}]`;
  return pids.find((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`) === socket;
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  });
}

const localPort = (c: Client): number => (c as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  redis = await startRedis();
  cluster = await startPgCluster();
  await cluster.psql(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${password}'; GRANT ALL ON DATABASE app TO ${ROLE};`);
  issuer = await startDevIssuer({
    audience: AUDIENCE,
    clients: [{ clientId: 'svc-reporting', clientSecret: 'workers-client-secret', groups: ['db-readers'], scopes: ['db.connect'] }],
  });
  dir = mkdtempSync(join(tmpdir(), 'tokengate-workers-'));
  mkdirSync(join(dir, 'audit'));
  mkdirSync(join(dir, 'state'));
  auditFile = join(dir, 'audit', 'audit.jsonl');
  configFile = join(dir, 'tokengate.yaml');
  writeFileSync(join(dir, 'admin-token'), `${ADMIN_TOKEN}\n`, { mode: 0o600 });
  writeFileSync(configFile, configYaml());
  notify = await listenForNotify(join(dir, 'notify.sock'));
  g = startGatewayProcess(configFile, { NOTIFY_SOCKET: notify.path, WORKERS_PG_PASSWORD: password });
  port = await g.port();
}, 120_000);

afterAll(async () => {
  if (g && g.child.exitCode === null) g.child.kill('SIGKILL');
  for (const pid of g ? workerPids(g.stderr()).values() : []) if (alive(pid)) process.kill(pid, 'SIGKILL');
  notify?.stop();
  await issuer?.stop();
  await cluster?.stop();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('READY=1 once, from the supervisor, when both workers are ready', async () => {
  const ready = await notify.waitFor('READY=1');
  expect(notify.messages()[ready]).toMatch(/STATUS=2 workers; listening: postgres on 127\.0\.0\.1:\d+/);
  expect(g.stderr()).toMatch(/all 2 workers ready/);
  expect(workerPids(g.stderr()).size).toBe(2);
  expect(notify.messages().filter((m) => m.split('\n').includes('READY=1'))).toHaveLength(1);
  // Each worker's log lines say which worker wrote them.
  const listeners = logLines(g.stderr()).filter((l) => /postgres listener on/.test(l.message)) as Array<{ worker?: number }>;
  expect(listeners.map((l) => l.worker).sort()).toEqual([1, 2]);
});

test('both workers serve connections from the one listener', async () => {
  const pids = [...workerPids(g.stderr()).values()];
  const clients = await Promise.all(Array.from({ length: 6 }, () => connect()));
  try {
    for (const c of clients) expect((await c.query('select current_user as u')).rows).toEqual([{ u: ROLE }]);
    const owners = clients.map((c) => ownerOf(pids, localPort(c)));
    expect(owners.every((o) => o !== undefined)).toBe(true);
    expect(new Set(owners).size).toBe(2);
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
});

test('GET /metrics, answered by either worker, covers both: every scrape sums the same counts', async () => {
  const admin = Number(/admin API on http:\/\/127\.0\.0\.1:(\d+)/.exec(g.stderr())![1]);
  const accepted = async (): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    return text.split('\n').filter((l) => l.startsWith('tokengate_connections_accepted_total{')).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
  };
  const counts = [await accepted(), await accepted(), await accepted(), await accepted()];
  // The previous test's six sessions, spread over both workers, in every scrape.
  expect(counts[0]).toBeGreaterThanOrEqual(6);
  expect(new Set(counts).size).toBe(1);
});

test('shared through Redis: the session list covers both workers, a CancelRequest reaching either cancels, a revocation ends sessions on both within a second', async () => {
  const pids = [...workerPids(g.stderr()).values()];
  const admin = Number(/admin API on http:\/\/127\.0\.0\.1:(\d+)/.exec(g.stderr())![1]);
  const api = (method: string, path: string, body?: unknown) => fetch(`http://127.0.0.1:${admin}${path}`, {
    method, headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, body: await r.json() as any }));
  // Sessions on both workers.
  const clients: Client[] = [];
  while (new Set(clients.map((c) => ownerOf(pids, localPort(c)))).size < 2 && clients.length < 12) clients.push(await connect());
  expect(new Set(clients.map((c) => ownerOf(pids, localPort(c)))).size).toBe(2);
  const listed = await api('GET', '/sessions');
  expect(listed.status).toBe(200);
  expect(new Set(listed.body.sessions.map((x: { instance: string }) => x.instance)).size).toBe(2);
  expect(listed.body.sessions).toHaveLength(clients.length);

  // node-postgres sends its CancelRequest on a new connection: round-robin puts some on the other worker.
  for (const c of clients.slice(0, 4)) {
    const running = c.query('select pg_sleep(30)').then(() => 'finished', (e: { code?: string }) => e.code);
    await waitFor(async () => (await api('GET', '/sessions')).body.sessions.some((x: { state: string }) => x.state === 'active'), { what: 'the statement to run' });
    const cancel = new Client({ host: '127.0.0.1', port, user: 'reader', database: 'app' });
    (cancel as unknown as { cancel(c: Client, q: unknown): void }).cancel(c, (c as unknown as { activeQuery: unknown }).activeQuery);
    expect(await running).toBe('57014');
  }

  const errors = clients.map((c) => new Promise<string | undefined>((resolve) => c.once('error', (e: { code?: string }) => resolve(e.code))));
  const started = Date.now();
  const r = await api('POST', '/revocations', { client: 'svc-reporting', reason: 'workers test' });
  expect(r.status).toBe(201);
  expect(await Promise.all(errors)).toEqual(clients.map(() => '57P01'));
  expect(Date.now() - started).toBeLessThan(1000);
  const refused = await connect().then(() => 'connected', (e: { code?: string }) => e.code);
  expect(refused).toBe('28P01');
  expect((await api('DELETE', `/revocations/${r.body.id}`)).status).toBe(200);
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
}, 60_000);

test('another gateway process on the same Redis: it is listed, a CancelRequest sent to this gateway cancels its statement, a revocation made here ends its session', async () => {
  const otherConfig = join(dir, 'other.yaml');
  writeFileSync(otherConfig, configYaml('db-readers', '127.0.0.1:0', 1));
  const other = startGatewayProcess(otherConfig, { WORKERS_PG_PASSWORD: password });
  try {
    const otherPort = await other.port();
    const admin = Number(/admin API on http:\/\/127\.0\.0\.1:(\d+)/.exec(g.stderr())![1]);
    const api = (method: string, path: string, body?: unknown) => fetch(`http://127.0.0.1:${admin}${path}`, {
      method, headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json() as any }));
    const c = await connect(otherPort);
    const gone = new Promise<string | undefined>((resolve) => c.once('error', (e: { code?: string }) => resolve(e.code)));
    // Listed through this gateway (the three instances: two workers and the other process).
    const listed = await waitFor(async () => {
      const r = await api('GET', '/sessions');
      return r.body.sessions.length === 1 && !r.body.unanswered?.length && r.body.sessions[0];
    }, { what: 'the other process\'s session in this gateway\'s list' });
    expect(listed).toMatchObject({ protocol: 'postgres', role: 'reader', database: 'app' });

    const running = c.query('select pg_sleep(30)').then(() => 'finished', (e: { code?: string }) => e.code);
    await waitFor(async () => (await api('GET', '/sessions')).body.sessions.some((x: { state: string }) => x.state === 'active'), { what: 'the statement to run' });
    // The cancel key names the other process: this gateway forwards the request to it.
    const canceller = new Client({ host: '127.0.0.1', port, user: 'reader', database: 'app' });
    (canceller as unknown as { cancel(c: Client, q: unknown): void }).cancel(c, (c as unknown as { activeQuery: unknown }).activeQuery);
    expect(await running).toBe('57014');

    const started = Date.now();
    const r = await api('POST', '/revocations', { client: 'svc-reporting', reason: 'two processes' });
    expect(r.status).toBe(201);
    expect(await gone).toBe('57P01');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await connect(otherPort).then(() => 'connected', (e: { code?: string }) => e.code)).toBe('28P01');
    expect((await api('DELETE', `/revocations/${r.body.id}`)).status).toBe(200);
    await c.end().catch(() => undefined);
  } finally {
    other.signal('SIGTERM');
    await other.exited;
  }
}, 60_000);

test('a worker killed by its PID is restarted with backoff, and the gateway keeps serving meanwhile', async () => {
  const before = workerPids(g.stderr());
  const victim = before.get(1)!;
  process.kill(victim, 'SIGKILL');
  await waitFor(() => new RegExp(`worker 1 \\(pid ${victim}\\) was killed by SIGKILL unasked; its sessions are gone; restarting it in 0\\.5s`).test(g.stderr()),
    { what: 'the supervisor to log the crash', timeoutMs: 10_000, detail: () => g.stderr() });
  // The other worker takes every connection while worker 1 is down.
  const c = await connect();
  expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
  await c.end();
  const restarted = await waitFor(() => {
    const pid = workerPids(g.stderr()).get(1);
    return pid !== victim && pid !== undefined && new RegExp(`worker 1 \\(pid ${pid}\\) ready`).test(g.stderr()) && pid;
  }, { what: 'worker 1 to be restarted and ready', timeoutMs: 30_000, detail: () => g.stderr() });
  expect(alive(restarted)).toBe(true);
  expect(alive(before.get(2)!)).toBe(true);
  // The restarted worker serves too.
  await waitFor(async () => {
    const clients = await Promise.all(Array.from({ length: 4 }, () => connect()));
    const owners = clients.map((x) => ownerOf([restarted, before.get(2)!], localPort(x)));
    await Promise.all(clients.map((x) => x.end()));
    return owners.includes(restarted);
  }, { what: 'a connection served by the restarted worker', timeoutMs: 20_000 });
}, 90_000);

test('the workers share the admin listener: each request is answered by one of them', async () => {
  const admin = Number(/admin API on http:\/\/127\.0\.0\.1:(\d+)/.exec(g.stderr())![1]);
  for (let i = 0; i < 4; i++) {
    const r = await fetch(`http://127.0.0.1:${admin}/readyz`);
    expect(r.status).toBe(200);
  }
});

test('a worker that cannot start with its settings stops the gateway with exit code 2', async () => {
  const other = join(dir, 'taken.yaml');
  writeFileSync(other, configYaml('db-readers', `127.0.0.1:${port}`));
  const second = startGatewayProcess(other, { WORKERS_PG_PASSWORD: password });
  const { code } = await second.exited;
  expect(code).toBe(2);
  expect(second.stderr()).toMatch(/cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/);
  expect(second.stderr()).toMatch(/could not start; stopping tokengate/);
  for (const pid of workerPids(second.stderr()).values()) expect(alive(pid)).toBe(false);
}, 60_000);

test('SIGHUP to the supervisor reloads every worker: a withdrawn grant refuses new logins on both, and each reload is audited', async () => {
  writeFileSync(configFile, configYaml('nobody'));
  const from = g.stderr().length;
  g.signal('SIGHUP');
  await waitFor(() => /reload: all 2 worker\(s\) reloaded/.test(g.stderr().slice(from)), { what: 'both workers to reload', timeoutMs: 30_000, detail: () => g.stderr().slice(from) });
  const attempts = await Promise.all(Array.from({ length: 6 }, () => connect().then((c) => c.end().then(() => 'connected'), (err: Error) => err.message)));
  for (const a of attempts) expect(a).toMatch(/no grant/i);
  const audits = readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(audits.filter((r) => r.event === 'admin_request' && r.method === 'SIGHUP' && r.status === 200)).toHaveLength(2);
  writeFileSync(configFile, configYaml());
  const again = g.stderr().length;
  g.signal('SIGHUP');
  await waitFor(() => /reload: all 2 worker\(s\) reloaded/.test(g.stderr().slice(again)), { what: 'the second reload', timeoutMs: 30_000 });
  const c = await connect();
  await c.end();
}, 60_000);

test('POST /reload, answered by one worker, reloads every worker', async () => {
  const admin = Number(/admin API on http:\/\/127\.0\.0\.1:(\d+)/.exec(g.stderr())![1]);
  const reload = () => fetch(`http://127.0.0.1:${admin}/reload`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })
    .then(async (r) => ({ status: r.status, body: await r.json() as { ok: boolean; changed?: string[] } }));
  writeFileSync(configFile, configYaml('nobody'));
  const r = await reload();
  expect(r).toEqual({ status: 200, body: { ok: true, changed: ['grants'] } });
  const attempts = await Promise.all(Array.from({ length: 6 }, () => connect().then((c) => c.end().then(() => 'connected'), (err: Error) => err.message)));
  for (const a of attempts) expect(a).toMatch(/no grant/i);
  writeFileSync(configFile, configYaml());
  expect((await reload()).status).toBe(200);
  const back = await Promise.all(Array.from({ length: 6 }, () => connect()));
  await Promise.all(back.map((c) => c.end()));
}, 60_000);

test('SIGTERM: every worker drains (a transaction finishes first), then the supervisor exits 0', async () => {
  const c = await connect();
  await c.query('begin');
  await c.query('select 1');
  const pids = [...workerPids(g.stderr()).values()].filter(alive);
  expect(pids).toHaveLength(2);
  g.signal('SIGTERM');
  await notify.waitFor('STOPPING=1');
  // The transaction still finishes; then its session ends with the shutdown error.
  await c.query('select 2');
  await c.query('commit');
  const ended = new Promise<Error>((resolve) => c.once('error', resolve));
  expect((await ended).message).toMatch(/shutting down/);
  const { code } = await g.exited;
  expect(code).toBe(0);
  for (const pid of pids) expect(alive(pid)).toBe(false);
  expect(g.stderr()).toMatch(/tokengate stopped/);
}, 60_000);

test('a second SIGTERM to the supervisor ends the sessions left in every worker at once; exit 0', async () => {
  writeFileSync(configFile, configYaml());
  const again = startGatewayProcess(configFile, { WORKERS_PG_PASSWORD: password });
  try {
    port = await again.port();
    await waitFor(() => /all 2 workers ready/.test(again.stderr()), { what: 'both workers ready', timeoutMs: 30_000, detail: () => again.stderr() });
    const c = await connect();
    await c.query('begin');
    const ended = new Promise<Error>((resolve) => c.once('error', resolve));
    again.signal('SIGTERM');
    await waitFor(() => /SIGTERM received: every worker stops taking connections/.test(again.stderr()), { what: 'the drain to begin' });
    // Still in its transaction: the grace (30s) would let it go on; the second signal ends it now.
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    again.signal('SIGTERM');
    expect((await ended).message).toMatch(/shutting down/);
    expect((await again.exited).code).toBe(0);
    expect(again.stderr()).toMatch(/SIGTERM received again: the workers end their remaining sessions now/);
  } finally {
    if (again.child.exitCode === null) again.child.kill('SIGKILL');
  }
}, 60_000);
