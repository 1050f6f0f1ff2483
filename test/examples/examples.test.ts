/**
 * Every agent example, run as a user runs it, against a real gateway (test/integration/harness:
 * a SCRAM-only PostgreSQL, the dev issuer, tokengate with TLS): the node-postgres agent, the
 * Python psycopg2 agent and the psql environment script in child processes, the LLM tool
 * in-process (its input and output are JavaScript values) and once from its command line.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGatewayHarness, CLIENTS, type PgHarness } from '../integration/harness';
import { makeTestCertificates } from '../helpers/tlsCert';
import { BIN, buildOnce, ROOT, runCommand } from '../demo/cli';

/** A plain CommonJS file, as users run it; required rather than imported so ts-jest leaves it alone. */
const tool = require('../../examples/llm-tool/read-only-sql.js') as {
  TOOL: { name: string; input_schema: object };
  runReadOnlySql(input: { sql: string }, ctx: { connection: object; getToken: () => Promise<string>; maxRows?: number }): Promise<Record<string, unknown>>;
};

const EXAMPLES = join(ROOT, 'examples');
const [reporting, , nobody] = CLIENTS;

let h: PgHarness;
let certs: ReturnType<typeof makeTestCertificates>;
let otherCa: ReturnType<typeof makeTestCertificates>;
let dir: string;
let secretFile: string;

beforeAll(async () => {
  certs = makeTestCertificates();
  otherCa = makeTestCertificates();
  [h] = await Promise.all([startGatewayHarness({ protocol: 'postgres', tls: { certFile: certs.certFile, keyFile: certs.keyFile } }), buildOnce()]);
  dir = mkdtempSync(join(tmpdir(), 'tg-examples-'));
  secretFile = join(dir, 'client-secret');
  writeFileSync(secretFile, `${reporting.clientSecret}\n`, { mode: 0o600 });
}, 240_000);

afterAll(async () => {
  await h?.stop();
  certs?.cleanup();
  otherCa?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The environment an operator would set for an agent: Okta-style OIDC_* and libpq PG*. */
function agentEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    OIDC_ISSUER: h.issuer.issuer,
    OIDC_CLIENT_ID: reporting.clientId,
    OIDC_CLIENT_SECRET_FILE: secretFile,
    OIDC_CLIENT_SECRET: '',
    PGHOST: 'localhost',
    PGPORT: String(h.port),
    PGUSER: 'reader',
    PGDATABASE: 'app',
    PGSSLMODE: 'verify-full',
    PGSSLROOTCERT: certs.caFile,
    PGPASSWORD: '',
    ...extra,
  };
}

function expectNoSecrets(text: string): void {
  for (const s of h.secrets) expect(text).not.toContain(s);
}

describe('examples/node-postgres/agent.js', () => {
  test('a pg.Pool whose password is the token: concurrent queries over TLS share one token', async () => {
    const before = h.issuer.requestCount('v1/token');
    const r = await runCommand('node', [join(EXAMPLES, 'node-postgres/agent.js'),
      'select count(*)::int as n from items', 'select current_user as who', 'select pg_sleep(0.3)'], { env: agentEnv() });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { rows: Record<string, unknown>[] });
    expect(lines.map((l) => l.rows[0])).toEqual([{ n: 10 }, { who: 'agent_ro' }, { pg_sleep: '' }]);
    expect(r.stderr).toMatch(/^token requests: 1, connections: [23]\n$/);
    expect(h.issuer.requestCount('v1/token')).toBe(before + 1);
    const accepted = h.audit.ofEvent('connection_accepted').filter((a) => a.sub === reporting.clientId && a.tls === true);
    expect(accepted.length).toBeGreaterThanOrEqual(2);
    expectNoSecrets(r.stdout + r.stderr);
  });

  test("the upstream role's privileges still apply: the reader cannot write", async () => {
    const r = await runCommand('node', [join(EXAMPLES, 'node-postgres/agent.js'), 'delete from items'], { env: agentEnv() });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('agent: permission denied for table items');
  });
});

describe('examples/python/agent.py (psycopg2)', () => {
  test('connects per task with the token as the password, verify-full TLS', async () => {
    const r = await runCommand('/usr/bin/python3', [join(EXAMPLES, 'python/agent.py'), 'select current_user', 'select count(*) from items'], { env: agentEnv() });
    expect(r.stderr).toBe('token requests: 1\n');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
      { query: 'select current_user', rows: [['agent_ro']] },
      { query: 'select count(*) from items', rows: [[10]] },
    ]);
    await h.audit.waitFor((a) => a.event === 'connection_accepted' && a.applicationName === 'python-agent' && a.tls === true);
  });

  test("a grant the client lacks: the gateway's explanation reaches the agent", async () => {
    const r = await runCommand('/usr/bin/python3', [join(EXAMPLES, 'python/agent.py')], { env: agentEnv({ PGUSER: 'writer' }) });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('role "writer" is not granted to you on database "app"; your grants allow: reader');
    expectNoSecrets(r.stderr);
  });
});

describe('examples/psql/tokengate-env.sh', () => {
  const script = (body: string, env: Record<string, string>): ReturnType<typeof runCommand> =>
    runCommand('bash', ['-c', `. ${join(EXAMPLES, 'psql/tokengate-env.sh')} && ${body}`], { env, cwd: dir, timeoutMs: 60_000 });
  const env = (extra: Record<string, string> = {}): Record<string, string> => ({
    ...agentEnv(),
    HOME: dir,
    XDG_CACHE_HOME: '',
    TOKENGATE: `node ${BIN}`,
    TOKENGATE_HOST: 'localhost',
    TOKENGATE_PORT: String(h.port),
    TOKENGATE_CA: certs.caFile,
    PGHOST: '', PGPORT: '', PGUSER: '', PGDATABASE: '', PGSSLMODE: '', PGSSLROOTCERT: '',
    ...extra,
  });

  test('PGPASSWORD and tgpsql over sslmode=verify-full, the token cached 0600 and reused', async () => {
    const before = h.issuer.requestCount('v1/token');
    const r = await script('tgpsql -XAtc "select current_user" && psql -XAtc "select current_setting(\'application_name\')"', env());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`agent_ro\npsql (tokengate: ${reporting.clientId})\n`);
    expect(h.issuer.requestCount('v1/token')).toBe(before + 1);
    const cache = join(dir, '.cache/tokengate', `token-${reporting.clientId}.json`);
    expect(statSync(cache).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, '.cache/tokengate')).mode & 0o777).toBe(0o700);
  });

  test('verify-full is real: a gateway certificate from another CA is refused before the token is sent', async () => {
    const tokensBefore = h.audit.ofEvent('connection_accepted').length;
    const r = await script('tgpsql -XAtc "select 1"', env({ TOKENGATE_CA: otherCa.caFile }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('certificate verify failed');
    expect(h.audit.ofEvent('connection_accepted').length).toBe(tokensBefore);
  });

  test('in a clone, without TOKENGATE set, it runs the clone\'s tokengate', async () => {
    const r = await script('tgpsql -XAtc "select current_user"', env({ TOKENGATE: '', PATH: process.env.PATH!.split(':').filter((d) => !existsSync(join(d, 'tokengate'))).join(':') }));
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toBe('agent_ro\n');
  });

  test('a missing setting stops the script with what to set', async () => {
    const r = await script('echo unreachable', env({ OIDC_ISSUER: '' }));
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('set OIDC_ISSUER to your Okta custom authorization server');
  });
});

describe('examples/llm-tool/read-only-sql.js', () => {
  const connection = (): object => ({ host: 'localhost', port: h.port, user: 'reader', database: 'app', ssl: { ca: readFileSync(certs.caFile, 'utf8') } });
  const fresh = (clientId = reporting.clientId) => () => h.token(clientId);

  test('declares itself to the model and returns rows', async () => {
    expect(tool.TOOL.name).toBe('run_readonly_sql');
    expect(tool.TOOL.input_schema).toMatchObject({ required: ['sql'] });
    const r = await tool.runReadOnlySql({ sql: 'select id, name from items order by id limit 2' }, { connection: connection(), getToken: fresh() });
    expect(r).toEqual({ ok: true, columns: ['id', 'name'], rows: [[1, 'item 1'], [2, 'item 2']], rowCount: 2, truncated: false });
    const big = await tool.runReadOnlySql({ sql: 'select generate_series(1, 150)' }, { connection: connection(), getToken: fresh(), maxRows: 100 });
    expect(big).toMatchObject({ ok: true, rowCount: 150, truncated: true });
    expect((big.rows as unknown[]).length).toBe(100);
  });

  test('an expired token: the agent gets the gateway text and what to do', async () => {
    const r = await tool.runReadOnlySql({ sql: 'select 1' }, { connection: connection(), getToken: () => h.token(reporting.clientId, { expiresInSec: -120, issuedAtSec: Math.floor(Date.now() / 1000) - 420 }) });
    expect(r.ok).toBe(false);
    expect(r.code).toBe('28P01');
    expect(r.error).toMatch(/^the access token expired at .*; fetch a new token from your issuer and reconnect$/);
    expect(r.advice).toContain('fetches a fresh token');
    expectNoSecrets(JSON.stringify(r));
  });

  test('a missing grant, and a write, are explained rather than thrown', async () => {
    const denied = await tool.runReadOnlySql({ sql: 'select 1' }, { connection: connection(), getToken: fresh(nobody.clientId) });
    expect(denied).toMatchObject({ ok: false, code: '28000' });
    expect(denied.error).toContain('no grant matches your token');
    expect(denied.advice).toContain('ask a human to change the grant');

    const write = await tool.runReadOnlySql({ sql: "insert into items values (99, 'x')" }, { connection: connection(), getToken: fresh() });
    expect(write).toMatchObject({ ok: false, code: '25006', error: 'cannot execute INSERT in a read-only transaction' });
  });

  test('runs from the command line with the OIDC_* / PG* environment', async () => {
    const r = await runCommand('node', [join(EXAMPLES, 'llm-tool/read-only-sql.js'), 'select count(*)::int as n from items'], { env: agentEnv() });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, columns: ['n'], rows: [[10]], rowCount: 1, truncated: false });
  });
});
