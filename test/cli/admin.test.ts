/**
 * The admin commands (sessions, kill, revoke, revocations, unrevoke, reload) as an operator runs
 * them: the real bin/tokengate.js against a small HTTP server in this test that speaks the admin
 * API's contract and records what it was sent.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectExit, runCli } from '../helpers/runCli';

interface Recorded {
  method: string;
  url: string;
  authorization: string | undefined;
  contentType: string | undefined;
  body: unknown;
}

interface Reply {
  status: number;
  body?: unknown;
  /** Never answer (for the timeout). */
  hang?: boolean;
}

/** The admin API's contract, answered from `route`. */
class FakeAdminApi {
  readonly requests: Recorded[] = [];
  route: (r: Recorded) => Reply = () => ({ status: 404, body: { error: 'not found' } });
  readonly #server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const rec: Recorded = {
        method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization,
        contentType: req.headers['content-type'], body: text === '' ? undefined : JSON.parse(text),
      };
      this.requests.push(rec);
      const reply = rec.authorization === `Bearer ${ADMIN_TOKEN}` ? this.route(rec) : { status: 401, body: { error: 'unauthorized' } };
      if (reply.hang) return;
      res.writeHead(reply.status, { 'content-type': 'application/json' });
      res.end(reply.body === undefined ? '' : JSON.stringify(reply.body));
    });
  });

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** A recognisable bearer: it must never show up in any output. */
const ADMIN_TOKEN = 'admtok-5b1f-RECOGNISABLE-never-printed';
const NO_ADMIN_ENV = { TOKENGATE_ADMIN_URL: undefined, TOKENGATE_ADMIN_TOKEN: undefined };

/** Fixtures with times relative to now, built when a test runs (the build before the tests takes a while). */
const ago = (ms: number): string => new Date(Date.now() - ms).toISOString();
const ahead = (ms: number): string => new Date(Date.now() + ms).toISOString();
const session = () => ({
  id: 's-17', instance: 'a001', protocol: 'postgres', sub: 'alice@example.com', cid: '0oa1reporting', jti: 'jti-1', grant: 'reporting-agents',
  role: 'reader', database: 'app', upstream: 'app-pg', remote: '127.0.0.1:50312',
  startedAt: ago(3_725_000), tokenExpiresAt: ahead(1_800_000),
  state: 'active', queryStartedAt: ago(12_000), queries: 42, bytesFromClient: 1536, bytesToClient: 3 * 1024 * 1024,
});
const idleSession = () => ({
  ...session(), id: 's-18', protocol: 'mysql', sub: 'etl', cid: null, jti: null, grant: 'etl-service', role: 'writer', database: 'billing',
  state: 'idle', queryStartedAt: null, queries: 0, bytesFromClient: 10, bytesToClient: 20,
});
const revocation = () => ({
  id: 'r-1', sub: 'alice@example.com', reason: 'leaked token', by: 'admin',
  createdAt: ago(300_000), until: null, expiresAt: ahead(3_300_000),
});

let api: FakeAdminApi;
let dir: string;
let tokenFile: string;

beforeAll(async () => {
  api = new FakeAdminApi();
  await api.listen();
  dir = mkdtempSync(join(tmpdir(), 'tg-cli-admin-'));
  tokenFile = join(dir, 'admin-token');
  writeFileSync(tokenFile, `${ADMIN_TOKEN}\n`, { mode: 0o600 });
});

afterAll(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  api.requests.length = 0;
  api.route = () => ({ status: 404, body: { error: 'not found' } });
});

/** Runs the CLI with the admin address and token given as options. */
function admin(args: string[], env: Record<string, string | undefined> = {}) {
  return runCli([...args, '--admin', api.url, '--admin-token-file', tokenFile], { env: { ...NO_ADMIN_ENV, ...env } });
}

function expectNoToken(r: { stdout: string; stderr: string }): void {
  expect(r.stdout).not.toContain(ADMIN_TOKEN);
  expect(r.stderr).not.toContain(ADMIN_TOKEN);
}

describe('tokengate sessions', () => {
  test('prints a table of live sessions with human ages, sending the bearer from --admin-token-file', async () => {
    api.route = (r) => (r.method === 'GET' && r.url === '/sessions' ? { status: 200, body: { sessions: [session(), idleSession()] } } : { status: 404, body: { error: 'no' } });
    const r = await admin(['sessions']);
    expect(r.stderr).toBe('');
    expectExit(r, 0);
    expect(api.requests).toEqual([expect.objectContaining({ method: 'GET', url: '/sessions', authorization: `Bearer ${ADMIN_TOKEN}` })]);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^ID\s+INSTANCE\s+PROTOCOL\s+SUB\s+CLIENT\s+GRANT\s+ROLE\s+DATABASE\s+REMOTE\s+AGE\s+STATE\s+QUERIES\s+IN\s+OUT\s+TOKEN EXPIRES$/);
    // Aligned: every column starts at the same offset on every line.
    const col = (line: string, text: string): number => line.indexOf(text);
    expect(col(lines[1], 'alice@example.com')).toBe(col(lines[0], 'SUB'));
    expect(col(lines[2], 'etl ')).toBe(col(lines[0], 'SUB'));
    expect(col(lines[1], 'reporting-agents')).toBe(col(lines[0], 'GRANT'));
    expect(lines[1]).toMatch(/s-17\s+a001\s+postgres\s+alice@example\.com\s+0oa1reporting\s+reporting-agents\s+reader\s+app\s+127\.0\.0\.1:50312\s+1h2m\s+active 12s\s+42\s+1\.5KiB\s+3\.0MiB\s+in 2[89]m/);
    expect(lines[2]).toMatch(/s-18\s+a001\s+mysql\s+etl\s+-\s+etl-service\s+writer\s+billing\s+\S+\s+1h2m\s+idle\s+0\s+10B\s+20B/);
    expectNoToken(r);
  });

  test('passes the filters as query parameters; --json prints the server JSON', async () => {
    const one = session();
    api.route = () => ({ status: 200, body: { sessions: [one] } });
    const r = await admin(['sessions', '--sub', 'alice@example.com', '--client', '0oa1reporting', '--grant', 'reporting-agents', '--protocol', 'postgres', '--json']);
    expectExit(r, 0);
    const url = new URL(api.requests[0].url, 'http://x');
    expect(url.pathname).toBe('/sessions');
    expect(Object.fromEntries(url.searchParams)).toEqual({ sub: 'alice@example.com', client: '0oa1reporting', grant: 'reporting-agents', protocol: 'postgres' });
    expect(JSON.parse(r.stdout)).toEqual({ sessions: [one] });
  });

  test('an empty list says so', async () => {
    api.route = () => ({ status: 200, body: { sessions: [] } });
    const r = await admin(['sessions', '--grant', 'nobody']);
    expectExit(r, 0);
    expect(r.stdout).toBe('no live sessions match\n');
  });

  test('an unknown protocol is a usage error (exit 2) and nothing is sent', async () => {
    const r = await admin(['sessions', '--protocol', 'oracle']);
    expectExit(r, 2);
    expect(r.stderr).toMatch(/Allowed choices are postgres, mysql/);
    expect(api.requests).toHaveLength(0);
  });
});

describe('where the address and the bearer come from', () => {
  test('TOKENGATE_ADMIN_URL and TOKENGATE_ADMIN_TOKEN when there are no options', async () => {
    api.route = () => ({ status: 200, body: { sessions: [] } });
    const r = await runCli(['sessions'], { cwd: dir, env: { TOKENGATE_ADMIN_URL: api.url, TOKENGATE_ADMIN_TOKEN: ADMIN_TOKEN } });
    expectExit(r, 0);
    expect(r.stdout).toBe('no live sessions\n');
    expect(api.requests[0].authorization).toBe(`Bearer ${ADMIN_TOKEN}`);
  });

  test("the config's listen.admin and admin.tokenFile, without needing the upstream secrets", async () => {
    const cfgDir = mkdtempSync(join(tmpdir(), 'tg-cli-admin-cfg-'));
    try {
      writeFileSync(join(cfgDir, 'token'), ADMIN_TOKEN);
      // The upstream password variable is unset, as in an operator's shell: the CLI must not need it.
      writeFileSync(join(cfgDir, 'tokengate.yaml'), `
listen:
  postgres: 127.0.0.1:6432
  admin: 0.0.0.0:${api.port}
oidc: { issuer: https://example.okta.com/oauth2/default, audience: api://tokengate }
upstreams:
  app-pg:
    protocol: postgres
    host: 127.0.0.1
    databases: { app: app }
    roles:
      reader: { user: agent_ro, password: \${TG_CLI_ADMIN_UNSET_PASSWORD} }
admin:
  tokenFile: token
`);
      api.route = () => ({ status: 200, body: { revocations: [] } });
      const viaOption = await runCli(['revocations', '-c', join(cfgDir, 'tokengate.yaml')], { env: NO_ADMIN_ENV });
      expectExit(viaOption, 0);
      expect(viaOption.stdout).toBe('no revocations in force\n');
      // Default path ./tokengate.yaml.
      const viaDefault = await runCli(['revocations'], { cwd: cfgDir, env: NO_ADMIN_ENV });
      expectExit(viaDefault, 0);
      expect(api.requests.map((q) => q.authorization)).toEqual([`Bearer ${ADMIN_TOKEN}`, `Bearer ${ADMIN_TOKEN}`]);
      // The options win over the environment, which wins over the config.
      const wrongFile = join(cfgDir, 'wrong');
      writeFileSync(wrongFile, 'wrong-token');
      const envOverConfig = await runCli(['revocations'], { cwd: cfgDir, env: { TOKENGATE_ADMIN_TOKEN: 'wrong-token', TOKENGATE_ADMIN_URL: undefined } });
      expectExit(envOverConfig, 1);
      const optionOverEnv = await runCli(['revocations', '--admin-token-file', join(cfgDir, 'token')], { cwd: cfgDir, env: { TOKENGATE_ADMIN_TOKEN: 'wrong-token' } });
      expectExit(optionOverEnv, 0);
    } finally {
      rmSync(cfgDir, { recursive: true, force: true });
    }
  });

  test('no token anywhere: exit 2 naming every place it looked, nothing sent', async () => {
    const cfgDir = mkdtempSync(join(tmpdir(), 'tg-cli-admin-notoken-'));
    try {
      writeFileSync(join(cfgDir, 'tokengate.yaml'), `listen:\n  postgres: 127.0.0.1:6432\n  admin: 127.0.0.1:${api.port}\n`);
      const r = await runCli(['sessions'], { cwd: cfgDir, env: NO_ADMIN_ENV });
      expectExit(r, 2);
      expect(r.stderr).toContain('no admin token: pass --admin-token-file FILE, set TOKENGATE_ADMIN_TOKEN');
      expect(r.stderr).toContain('admin.tokenFile in ./tokengate.yaml');
      const noConfig = await runCli(['sessions', '--admin', api.url], { cwd: dir, env: NO_ADMIN_ENV });
      expectExit(noConfig, 2);
      expect(noConfig.stderr).toContain('no admin token given (--admin-token-file, TOKENGATE_ADMIN_TOKEN), and no config file found');
      expect(api.requests).toHaveLength(0);
    } finally {
      rmSync(cfgDir, { recursive: true, force: true });
    }
  });

  test('refuses to send the bearer over plain http to another host (exit 2)', async () => {
    const r = await runCli(['sessions', '--admin', 'http://10.1.2.3:9187', '--admin-token-file', tokenFile], { env: NO_ADMIN_ENV });
    expectExit(r, 2);
    expect(r.stderr).toContain('refusing to send the admin bearer over plain http to 10.1.2.3:9187');
  });
});

describe('tokengate kill', () => {
  test('DELETE /sessions/ID', async () => {
    api.route = (r) => (r.method === 'DELETE' && r.url === '/sessions/s-17' ? { status: 200, body: { id: 's-17', ended: true } } : { status: 404, body: { error: 'no' } });
    const r = await admin(['kill', 's-17']);
    expectExit(r, 0);
    expect(r.stdout).toBe('ended session s-17\n');
    const json = await admin(['kill', 's-17', '--json']);
    expect(JSON.parse(json.stdout)).toEqual({ id: 's-17', ended: true });
  });

  test("an unknown id: exit 1 with the server's message", async () => {
    api.route = () => ({ status: 404, body: { error: 'no live session s-99' } });
    const r = await admin(['kill', 's-99']);
    expectExit(r, 1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('tokengate: DELETE /sessions/s-99: HTTP 404: no live session s-99\n');
  });
});

describe('tokengate revoke', () => {
  test('POST /revocations with the target, reason and --until as an ISO time from a duration', async () => {
    api.route = (r) => (r.method === 'POST' && r.url === '/revocations'
      ? { status: 201, body: { id: 'r-7', createdAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 7_200_000).toISOString(), sessionsEnded: 2 } }
      : { status: 404, body: { error: 'no' } });
    const before = Date.now();
    const r = await admin(['revoke', '--sub', 'alice@example.com', '--reason', 'leaked token', '--until', '2h']);
    expectExit(r, 0);
    const req = api.requests[0];
    expect(req.contentType).toBe('application/json');
    const body = req.body as { sub: string; reason: string; until: string };
    expect(Object.keys(body).sort()).toEqual(['reason', 'sub', 'until']);
    expect(body).toMatchObject({ sub: 'alice@example.com', reason: 'leaked token' });
    const until = Date.parse(body.until);
    expect(until).toBeGreaterThanOrEqual(before + 7_200_000);
    expect(until).toBeLessThanOrEqual(Date.now() + 7_200_000);
    expect(r.stdout).toMatch(/^revoked sub=alice@example\.com: revocation r-7, 2 live sessions ended; expires in (2h|1h59m) \(.+\)\n$/);
  });

  test('--client and --jti, an ISO --until, and an answer without expiry', async () => {
    api.route = () => ({ status: 201, body: { id: 'r-8', createdAt: new Date().toISOString(), expiresAt: null, sessionsEnded: 0 } });
    const byClient = await admin(['revoke', '--client', '0oa1etl']);
    expectExit(byClient, 0);
    expect(api.requests[0].body).toEqual({ client: '0oa1etl' });
    expect(byClient.stdout).toBe('revoked client=0oa1etl: revocation r-8, 0 live sessions ended; lasts until removed (tokengate unrevoke r-8)\n');
    const byJti = await admin(['revoke', '--jti', 'AT.abc', '--until', '2099-01-31T00:00:00Z', '--json']);
    expectExit(byJti, 0);
    expect(api.requests[1].body).toEqual({ jti: 'AT.abc', until: '2099-01-31T00:00:00.000Z' });
    expect(JSON.parse(byJti.stdout)).toMatchObject({ id: 'r-8', sessionsEnded: 0 });
  });

  test('usage errors exit 2 and send nothing', async () => {
    // Reported before any question about the admin address or token.
    const bare = await runCli(['revoke', '--sub', 'a', '--jti', 'b'], { cwd: dir, env: NO_ADMIN_ENV });
    expectExit(bare, 2);
    expect(bare.stderr).toBe('tokengate: give exactly one of --sub, --client or --jti\n');
    const none = await admin(['revoke']);
    expectExit(none, 2);
    expect(none.stderr).toContain('give exactly one of --sub, --client or --jti');
    const two = await admin(['revoke', '--sub', 'a', '--jti', 'b']);
    expectExit(two, 2);
    const badUntil = await admin(['revoke', '--sub', 'a', '--until', 'tomorrow']);
    expectExit(badUntil, 2);
    expect(badUntil.stderr).toContain('--until "tomorrow" is neither an ISO time');
    const past = await admin(['revoke', '--sub', 'a', '--until', '2001-01-01T00:00:00Z']);
    expectExit(past, 2);
    expect(past.stderr).toContain('is not in the future');
    expect(api.requests).toHaveLength(0);
  });

  test("a 400 from the server: exit 1 with the server's message", async () => {
    api.route = () => ({ status: 400, body: { error: 'until must be in the future' } });
    const r = await admin(['revoke', '--sub', 'a', '--until', '1h']);
    expectExit(r, 1);
    expect(r.stderr).toBe('tokengate: POST /revocations: HTTP 400: until must be in the future\n');
  });
});

describe('tokengate revocations and unrevoke', () => {
  test('a table of revocations; a bare array is accepted too', async () => {
    const first = revocation();
    // As the admin API sends it (the target's key at the top level), and nested under `target`.
    const { sub: _sub, ...rest } = first;
    const locked = { ...rest, id: 'r-2', target: { client: '0oa1etl' }, reason: null, until: ahead(86_400_000), expiresAt: null };
    for (const body of [{ revocations: [first, locked] }, [first, locked]]) {
      api.route = () => ({ status: 200, body });
      const r = await admin(['revocations']);
      expectExit(r, 0);
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^ID\s+TARGET\s+REASON\s+BY\s+CREATED\s+LOCKED UNTIL\s+EXPIRES$/);
      expect(lines[1]).toMatch(/^r-1\s+sub=alice@example\.com\s+leaked token\s+admin\s+5m\d*s? ago\s+-\s+in 5[45]m/);
      expect(lines[2]).toMatch(/^r-2\s+client=0oa1etl\s+-\s+admin\s+5m\d*s? ago\s+in (1d|23h59m)\s+never \(until removed\)$/);
    }
    const json = await admin(['revocations', '--json']);
    expect(JSON.parse(json.stdout)).toEqual([first, locked]);
  });

  test('unrevoke: DELETE /revocations/ID; an unknown id exits 1', async () => {
    api.route = (r) => (r.url === '/revocations/r-1' ? { status: 200, body: { id: 'r-1', deleted: true } } : { status: 404, body: { error: 'no revocation r-404' } });
    const ok = await admin(['unrevoke', 'r-1']);
    expectExit(ok, 0);
    expect(ok.stdout).toBe('removed revocation r-1\n');
    expect(api.requests[0]).toMatchObject({ method: 'DELETE', url: '/revocations/r-1' });
    const missing = await admin(['unrevoke', 'r-404']);
    expectExit(missing, 1);
    expect(missing.stderr).toContain('HTTP 404: no revocation r-404');
  });

  test('ids are sent as one path segment', async () => {
    api.route = () => ({ status: 404, body: { error: 'no such session' } });
    await admin(['kill', '../revocations/r-1']);
    expect(api.requests[0].url).toBe('/sessions/..%2Frevocations%2Fr-1');
  });
});

describe('tokengate reload', () => {
  test('prints what changed', async () => {
    api.route = (r) => (r.method === 'POST' && r.url === '/reload' ? { status: 200, body: { ok: true, changed: ['grants', 'upstreams.app-pg'] } } : { status: 404, body: { error: 'no' } });
    const r = await admin(['reload']);
    expectExit(r, 0);
    expect(r.stdout).toBe('reloaded; changed: grants, upstreams.app-pg\n');
    api.route = () => ({ status: 200, body: { ok: true, changed: [] } });
    expect((await admin(['reload'])).stdout).toBe('reloaded; nothing changed\n');
  });

  test('a broken config: every problem, exit 1; --json prints the problems on stdout too', async () => {
    const problems = [{ path: 'grants[0].upstream', message: 'upstream "nope" is not defined' }, { path: 'listen.postgres', message: 'expected "host:port"' }];
    api.route = () => ({ status: 400, body: { ok: false, problems } });
    const r = await admin(['reload']);
    expectExit(r, 1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('tokengate: reload refused, the running config is kept; fix the config file and reload again:\n'
      + '  - grants[0].upstream: upstream "nope" is not defined\n  - listen.postgres: expected "host:port"\n');
    const json = await admin(['reload', '--json']);
    expectExit(json, 1);
    expect(JSON.parse(json.stdout)).toEqual({ ok: false, problems });
  });
});

describe('failures', () => {
  test('a wrong bearer: exit 1, the server message and where the token came from, never the token', async () => {
    const wrong = join(dir, 'wrong-token');
    writeFileSync(wrong, 'wrong-admtok-RECOGNISABLE\n');
    const r = await runCli(['sessions', '--admin', api.url, '--admin-token-file', wrong], { env: NO_ADMIN_ENV });
    expectExit(r, 1);
    expect(r.stderr).toContain('GET /sessions: HTTP 401: unauthorized');
    expect(r.stderr).toContain(`the bearer from --admin-token-file ${wrong} was not accepted`);
    expect(r.stderr).not.toContain('wrong-admtok-RECOGNISABLE');
    const viaEnv = await runCli(['sessions', '--admin', api.url], { env: { TOKENGATE_ADMIN_TOKEN: 'wrong-admtok-RECOGNISABLE' } });
    expectExit(viaEnv, 1);
    expect(viaEnv.stderr).toContain('the bearer from TOKENGATE_ADMIN_TOKEN was not accepted');
    expect(viaEnv.stderr + viaEnv.stdout).not.toContain('wrong-admtok-RECOGNISABLE');
  });

  test('a 500 without the JSON error shape, and control characters in a message, are printed safely', async () => {
    api.route = () => ({ status: 500, body: 'upstream\u001b[2J exploded' });
    const r = await admin(['revocations']);
    expectExit(r, 1);
    expect(r.stderr).toBe('tokengate: GET /revocations: HTTP 500: "upstream\\u001b[2J exploded"\n');
    api.route = () => ({ status: 409, body: { error: 'busy\u001b]0;owned\u0007 now' } });
    const esc = await admin(['reload']);
    expectExit(esc, 1);
    expect(esc.stderr).toBe('tokengate: POST /reload: HTTP 409: busy ]0;owned  now\n');
  });

  test('nothing listening: exit 3 naming the address', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const r = await runCli(['reload', '--admin', `http://127.0.0.1:${port}`, '--admin-token-file', tokenFile], { env: NO_ADMIN_ENV });
    expectExit(r, 3);
    expect(r.stderr).toContain(`cannot reach the admin API at http://127.0.0.1:${port}: fetch failed (ECONNREFUSED)`);
    expectNoToken(r);
  });

  test('no answer within --timeout: exit 3', async () => {
    api.route = () => ({ status: 0, hang: true });
    const started = Date.now();
    const r = await admin(['sessions', '--timeout', '300ms']);
    expectExit(r, 3);
    expect(r.stderr).toContain('no answer within 300ms (--timeout)');
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
