/**
 * `tokengate demo` end to end, as a newcomer runs it: the built CLI in a child process, the
 * commands it prints run exactly as printed (npx tokengate token, psql, node-postgres), the
 * refusals it promises, the audit lines, check-config and verify-token on its generated
 * config, and a clean stop on Ctrl-C (SIGINT) that leaves no process and no state behind.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildOnce, ROOT, runCommand, startBackground, tokengate, type Background } from './cli';
import type { DemoState } from '../../src/dev/demo/stateFile';
import { waitFor } from '../helpers/waitFor';

const exec = promisify(execFile);

/** Listen on a free loopback port and keep it, to make the demo fall back. */
function occupyPort(): Promise<net.Server> {
  return new Promise((resolve) => {
    const srv = net.createServer((s) => s.destroy());
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

async function childrenOf(pid: number): Promise<string> {
  const { stdout } = await exec('ps', ['-o', 'pid=,cmd=', '--ppid', String(pid)]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  return stdout.trim();
}

function auditLines(stdout: string): Record<string, unknown>[] {
  return stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

function waitForAudit(demo: Background, pred: (r: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  return waitFor(() => auditLines(demo.stdout()).find(pred), {
    what: 'a matching audit line', timeoutMs: 10_000, intervalMs: 50, detail: () => `stdout:\n${demo.stdout().slice(-3000)}`,
  });
}

/** The "Try it" part of the banner, split into the blocks separated by blank lines. */
function tryItBlocks(banner: string): string[] {
  const start = banner.indexOf('Try it from another terminal:');
  const end = banner.indexOf('The audit log');
  expect(start).toBeGreaterThan(0);
  return banner.slice(start, end).split('\n\n').slice(1).map((b) => b.trim()).filter(Boolean);
}

/** Runs printed shell text in bash, in the printed directory, with the demo's TMPDIR (where the state file is). */
function bash(script: string, tmp: string): ReturnType<typeof runCommand> {
  return runCommand('bash', ['-c', script], { env: { TMPDIR: tmp, PGPASSWORD: '', PGCONNECT_TIMEOUT: '10' }, cwd: tmpdir(), timeoutMs: 120_000 });
}

beforeAll(() => buildOnce(), 180_000);

describe('tokengate demo with the embedded PostgreSQL', () => {
  let tmp: string;
  let demo: Background;
  let blocker: net.Server;
  let state: DemoState;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'tg-demo-'));
    blocker = await occupyPort();
    const taken = (blocker.address() as net.AddressInfo).port;
    demo = startBackground(['demo', '--port', String(taken)], { env: { TMPDIR: tmp } });
    await demo.waitForStdout(/The audit log/, 120_000);
    expect(demo.stderr()).toContain(`127.0.0.1:${taken} is already in use`);
    expect(demo.stdout()).toContain(`port ${taken} is taken, so a free port was used`);
    state = JSON.parse(readFileSync(join(tmp, 'tokengate-demo/demo.json'), 'utf8')) as DemoState;
    expect(state.postgres).not.toBe(`127.0.0.1:${taken}`);
  }, 180_000);

  afterAll(async () => {
    if (demo && demo.child.exitCode === null) demo.child.kill('SIGKILL');
    blocker?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('the state file is private and describes the running demo', () => {
    const dir = join(tmp, 'tokengate-demo');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'demo.json')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'tokengate.yaml')).mode & 0o777).toBe(0o600);
    expect(state).toMatchObject({ pid: demo.child.pid, database: 'app', upstream: 'embedded PGlite', audience: 'api://tokengate' });
    expect(state.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/oauth2\/default$/);
    expect(state.clients.map((c) => [c.clientId, c.groups, c.role])).toEqual([['svc-reporting', ['db-readers'], 'reader'], ['svc-billing', ['db-writers'], 'writer'], ['svc-agent', ['db-readers'], 'reader']]);
    // The banner never shows a client secret; the private key is in a 0600 file of the 0700 directory.
    for (const c of state.clients.filter((c) => c.clientSecret)) expect(demo.stdout()).not.toContain(c.clientSecret);
    expect(state.clients[2].privateKeyFile).toBe(join(dir, 'svc-agent.key.pem'));
    expect(statSync(state.clients[2].privateKeyFile!).mode & 0o777).toBe(0o600);
  });

  test('the printed commands work as printed: psql as svc-reporting, node-postgres as svc-billing', async () => {
    const [cd, psqlBlock, nodeBlock] = tryItBlocks(demo.stdout());
    expect(cd).toBe(`cd ${ROOT}`);
    expect(psqlBlock).toContain('export PGPASSWORD="$(npx tokengate token --demo --client svc-reporting)"');

    const psql = await bash(`${cd}\n${psqlBlock}`, tmp);
    expect(psql.stderr).toBe('');
    expect(psql.code).toBe(0);
    expect(psql.stdout).toMatch(/1 \|\s+1 \| 1200\.00 \| paid/);
    expect(psql.stdout).toContain('(5 rows)');
    const accepted = await waitForAudit(demo, (r) => r.event === 'connection_accepted' && r.sub === 'svc-reporting');
    expect(accepted).toMatchObject({ grant: 'demo-readers', role: 'reader', database: 'app', groups: ['db-readers'], applicationName: 'psql' });
    await waitForAudit(demo, (r) => r.event === 'query' && r.sub === 'svc-reporting' && r.tag === 'SELECT 5');

    const node = await bash(`${cd}\n${nodeBlock}`, tmp);
    expect(node.stderr).toBe('');
    expect(node.code).toBe(0);
    expect(node.stdout).toMatch(/\[ \{ id: \d+ \} \]/);
    await waitForAudit(demo, (r) => r.event === 'query' && r.sub === 'svc-billing' && String(r.sql).startsWith('insert into orders'));
  }, 180_000);

  test('the printed refusals are refused: an expired token, a role not granted', async () => {
    const blocks = tryItBlocks(demo.stdout());
    const [expired, notGranted] = blocks[3].split('\n').filter((l) => !l.startsWith('#'));
    expect(expired).toContain('--expired');

    const e = await bash(`${blocks[0]}\n${expired}`, tmp);
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(/FATAL: {2}the access token expired at .*fetch a new token from your issuer and reconnect/);
    await waitForAudit(demo, (r) => r.event === 'connection_rejected' && r.reason === 'expired');

    const g = await bash(`${blocks[0]}\n${notGranted}`, tmp);
    expect(g.code).toBe(2);
    expect(g.stderr).toContain('FATAL:  role "writer" is not granted to you on database "app"; your grants allow: reader');
    const rejected = await waitForAudit(demo, (r) => r.event === 'connection_rejected' && r.reason === 'role_not_granted');
    expect(rejected).toMatchObject({ sub: 'svc-reporting', role: 'writer' });

    // No token and no secret in the audit stream.
    for (const c of state.clients.filter((c) => c.clientSecret)) expect(demo.stdout()).not.toContain(c.clientSecret);
    expect(demo.stdout()).not.toMatch(/eyJ[\w-]+\.eyJ/);
  }, 180_000);

  test("the README's connect command works with the port the demo printed", async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const block = [...readme.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]).find((b) => b.includes('export PGPORT='))!;
    const port = /gateway {3}postgres 127\.0\.0\.1:(\d+)/.exec(demo.stdout())![1];
    const script = block.replace(/^export PGPORT=6432\b/m, `export PGPORT=${port}`);
    expect(script).not.toBe(block);
    const r = await bash(`cd ${ROOT}\n${script}`, tmp);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(/^ +1 \| 1200\.00 \| paid$/m);
  }, 60_000);

  test('the banner says what PGlite cannot do, and where to see it', () => {
    expect(demo.stdout()).toContain('PGlite also cannot cancel a running query (Ctrl-C in psql) or deliver LISTEN/NOTIFY;');
    expect(demo.stdout()).toContain('run the demo with --postgres URL to see those through the gateway.');
  });

  test('token --demo --audience gets a token for that audience, which the gateway refuses', async () => {
    const [cd, psqlBlock] = tryItBlocks(demo.stdout());
    const psqlLine = psqlBlock.split('\n').map((l) => l.trim()).find((l) => l.startsWith('psql '))!;
    const r = await bash(`${cd}\nexport PGPASSWORD="$(npx tokengate token --demo --client svc-reporting --audience api://some-other-app)"\n${psqlLine}`, tmp);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('FATAL:  token audience [api://some-other-app] does not include the expected audience api://tokengate');
    await waitForAudit(demo, (a) => a.event === 'connection_rejected' && a.reason === 'bad_audience');
  }, 60_000);

  test('private_key_jwt: the printed svc-agent command, and the okta.md command with the demo\'s issuer, client and key', async () => {
    const blocks = tryItBlocks(demo.stdout());
    const keyBlock = blocks.find((b) => b.startsWith('# 4. svc-agent'))!;
    const r = await bash(`${blocks[0]}\n${keyBlock}`, tmp);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(/current_user\s+-+\s+postgres/);
    await waitForAudit(demo, (a) => a.event === 'connection_accepted' && a.sub === 'svc-agent');

    // docs/okta.md step 3, with what a reader changes to try it on the demo.
    const okta = readFileSync(join(ROOT, 'docs/okta.md'), 'utf8');
    const command = /^tokengate token --issuer https:\/\/acme\.okta\.com[\s\S]*?access-token\.txt$/m.exec(okta)![0];
    const agent = state.clients[2];
    const mine = command.replace('https://acme.okta.com/oauth2/aus9tokengate', state.issuer).replace('0oa9svcreporting', agent.clientId)
      .replace('svc-reporting.key.pem', agent.privateKeyFile!).replace('svc-reporting-1', agent.keyId!).replace(/^tokengate /, 'npx tokengate ');
    const t = await bash(`cd ${ROOT}\n${mine.replace('access-token.txt', join(tmp, 'access-token.txt'))}`, tmp);
    expect([t.code, t.stderr]).toEqual([0, '']);
    const verify = await tokengate(['verify-token', '--config', state.configFile, '-'], { input: readFileSync(join(tmp, 'access-token.txt'), 'utf8') });
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain('"cid": "svc-agent"');
  }, 60_000);

  test('check-config and verify-token work on the generated config', async () => {
    const check = await tokengate(['check-config', '--config', state.configFile]);
    expect(check.code).toBe(0);
    expect(check.stdout).toContain('demo-readers');
    const token = await tokengate(['token', '--demo', '--client', 'svc-billing'], { env: { TMPDIR: tmp } });
    expect(token.code).toBe(0);
    const verify = await tokengate(['verify-token', '--config', state.configFile, '-'], { input: token.stdout });
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain('verdict: VALID');
    expect(verify.stdout).toMatch(/demo-writers: postgres upstream demo, databases \[app\], roles \[writer, reader\]/);
    expect(verify.stdout).not.toContain(token.stdout.trim());
  }, 120_000);

  test('a second demo with the same state directory is refused', async () => {
    const second = await tokengate(['demo', '--port', '0'], { env: { TMPDIR: tmp } });
    expect(second.code).toBe(2);
    expect(second.stderr).toContain(`a demo is already running (pid ${state.pid}`);
  }, 60_000);

  test('Ctrl-C stops everything: exit 0, no child process, port closed, state removed', async () => {
    const pid = demo.child.pid!;
    expect(await childrenOf(pid)).toBe('');
    demo.child.kill('SIGINT');
    const { code, signal } = await demo.exited;
    expect([code, signal]).toEqual([0, null]);
    expect(pidGone(pid)).toBe(true);
    expect(existsSync(join(tmp, 'tokengate-demo/demo.json'))).toBe(false);
    expect(existsSync(join(tmp, 'tokengate-demo/secrets'))).toBe(false);
    const [host, port] = state.postgres.split(':');
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect(Number(port), host);
      s.once('connect', () => (s.destroy(), resolve(false)));
      s.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
    const after = await tokengate(['token', '--demo'], { env: { TMPDIR: tmp } });
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('no running demo found');
  }, 60_000);
});

describe('tokengate demo with a real PostgreSQL (--postgres URL)', () => {
  const URL = 'postgres://postgres@127.0.0.1:5432/test';
  /** The local server is shared: a schema name of this test's own. */
  const SCHEMA = `tg17_demo_${process.pid}`;
  const psqlLocal = (sql: string): ReturnType<typeof runCommand> => runCommand('psql', ['-XAtq', '-v', 'ON_ERROR_STOP=1', URL, '-c', sql]);
  afterAll(() => psqlLocal(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE; DROP SCHEMA IF EXISTS ${SCHEMA}_theirs CASCADE`));

  test('seeds the sample tables in a schema of its own, so the printed commands run; says how to remove it', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'tg-demo-pg-'));
    const start = (): Background => startBackground(['demo', '--port', '0', '--postgres', URL, '--schema', SCHEMA], { env: { TMPDIR: tmp } });
    let demo = start();
    try {
      await demo.waitForStdout(/The audit log/, 60_000);
      expect(demo.stdout()).toContain(`database  ${URL}`);
      expect(demo.stdout()).toContain(`created   schema ${SCHEMA} in ${URL}: tables customers, orders, items`);
      const [cd, psqlBlock, nodeBlock] = tryItBlocks(demo.stdout());
      const r = await bash(`${cd}\n${psqlBlock}`, tmp);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/1 \|\s+1 \| 1200\.00 \| paid/);
      expect(r.stdout).toContain('(5 rows)');
      const node = await bash(`${cd}\n${nodeBlock}`, tmp);
      expect([node.code, node.stderr]).toEqual([0, '']);
      expect(node.stdout).toMatch(/\[ \{ id: 6 \} \]/);
      demo.child.kill('SIGINT');
      expect(await demo.exited).toEqual({ code: 0, signal: null });
      // Kept after Ctrl-C (with the row node-postgres added); the next start replaces it with fresh rows.
      expect((await psqlLocal(`select count(*) from ${SCHEMA}.orders`)).stdout).toBe('6\n');
      demo = start();
      await demo.waitForStdout(/The audit log/, 60_000);
      expect((await psqlLocal(`select count(*) from ${SCHEMA}.orders`)).stdout).toBe('5\n');
      demo.child.kill('SIGINT');
      expect(await demo.exited).toEqual({ code: 0, signal: null });
      // The printed removal command, as printed.
      const remove = /remove it with: (.*)/.exec(demo.stdout())![1];
      expect((await runCommand('bash', ['-c', remove])).code).toBe(0);
      expect((await psqlLocal(`select count(*) from pg_namespace where nspname = '${SCHEMA}'`)).stdout).toBe('0\n');
    } finally {
      if (demo.child.exitCode === null) demo.child.kill('SIGKILL');
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 180_000);

  test('a schema of that name the demo did not create is left alone', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'tg-demo-pg-'));
    try {
      const theirs = `${SCHEMA}_theirs`;
      await psqlLocal(`CREATE SCHEMA ${theirs}; CREATE TABLE ${theirs}.orders (id int); INSERT INTO ${theirs}.orders VALUES (42)`);
      const r = await tokengate(['demo', '--port', '0', '--postgres', URL, '--schema', theirs], { env: { TMPDIR: tmp } });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`schema ${theirs} already exists on ${URL} and was not created by the demo, so the demo leaves it alone; pass --schema with another name`);
      expect((await psqlLocal(`select id from ${theirs}.orders`)).stdout).toBe('42\n');
      const bad = await tokengate(['demo', '--port', '0', '--postgres', URL, '--schema', 'Robert"); drop'], { env: { TMPDIR: tmp } });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('use lower-case letters, digits and _');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 60_000);

  test('a URL the server refuses, and URLs the demo cannot use, fail with a reason', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'tg-demo-bad-'));
    try {
      const bad = await tokengate(['demo', '--port', '0', '--postgres', 'postgres://no_such_role@127.0.0.1:5432/test'], { env: { TMPDIR: tmp } });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('cannot use postgres://no_such_role@127.0.0.1:5432/test as the demo database');
      expect(bad.stderr).toContain('role "no_such_role" does not exist');
      const noPassword = await tokengate(['demo', '--mysql', 'mysql://root@127.0.0.1:3306/test'], { env: { TMPDIR: tmp } });
      expect(noPassword.code).toBe(2);
      expect(noPassword.stderr).toContain('--mysql URL needs a password');
      expect(noPassword.stderr).toMatch(/^ {2}CREATE USER 'test'@'%' IDENTIFIED BY 'demo-[\w-]+';$/m);
      const notPostgres = await tokengate(['demo', '--postgres', 'mysql://root:x@127.0.0.1:3306/test'], { env: { TMPDIR: tmp } });
      expect(notPostgres.code).toBe(2);
      expect(notPostgres.stderr).toContain('--postgres expects a postgres:// URL');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 60_000);
});
