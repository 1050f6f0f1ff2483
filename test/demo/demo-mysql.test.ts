/**
 * `tokengate demo --mysql URL`: the demo also serves a real MariaDB (a throwaway server) on a
 * MySQL listener. An account without a password is refused with the SQL that makes one; with
 * that account the demo creates its own database with the sample tables, never touching another;
 * the printed mariadb command and the MySQL examples (PyMySQL, mysql2 compiled as its header
 * says) work against it, the PostgreSQL side keeps working, and Ctrl-C still stops everything.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMariadbServer, type MariadbServer } from '../helpers/mariadbServer';
import { buildOnce, ROOT, runCommand, startBackground, tokengate } from './cli';

let maria: MariadbServer;
beforeAll(async () => {
  [maria] = await Promise.all([startMariadbServer(), buildOnce()]);
  // Someone's own database, which the demo must leave alone.
  await maria.sql(`CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, total DECIMAL(10,2)); INSERT INTO shop.orders VALUES (1, 12.50);`);
}, 180_000);
afterAll(() => maria?.stop());

function tryItBlocks(banner: string): string[] {
  return banner.slice(banner.indexOf('Try it from another terminal:'), banner.indexOf('The audit log')).split('\n\n').slice(1).map((b) => b.trim()).filter(Boolean);
}

test('the account help, the seeded database, the printed mariadb command and the MySQL examples', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'tg-demo-my-'));
  const env = { TMPDIR: tmp };
  // root has no password: refused, with the two statements that make a suitable account.
  const refused = await tokengate(['demo', '--port', '0', '--mysql-port', '0', '--mysql', `mysql://root@127.0.0.1:${maria.port}`], { env });
  expect(refused.code).toBe(2);
  const sql = refused.stderr.split('\n').filter((l) => /^ {2}(CREATE USER|GRANT) /.test(l));
  expect(sql).toHaveLength(2);
  await maria.sql(sql.join('\n'));
  const url = /^then: npx tokengate demo --mysql (\S+)$/m.exec(refused.stderr)![1];
  const password = /:([^:@]+)@/.exec(url)![1];
  expect(url).toBe(`mysql://tokengate_demo:${password}@127.0.0.1:${maria.port}/tokengate_demo`);

  // That account cannot (and the demo would not) take over a database it did not create.
  const notOurs = await tokengate(['demo', '--port', '0', '--mysql-port', '0', '--mysql', url.replace(/tokengate_demo$/, 'shop')], { env });
  expect(notOurs.code).toBe(2);
  expect(notOurs.stderr).toMatch(/database shop already exists on .* and was not created by the demo, so the demo leaves it alone|cannot create the demo's database shop/);
  expect((await maria.sql('SELECT COUNT(*) FROM shop.orders')).trim()).toBe('1');

  const demo = startBackground(['demo', '--port', '0', '--mysql-port', '0', '--mysql', url], { env });
  try {
    await demo.waitForStdout(/The audit log/, 120_000);
    const out = demo.stdout();
    expect(out).toMatch(/gateway {3}postgres 127\.0\.0\.1:\d+, mysql 127\.0\.0\.1:(\d+); database alias "app"/);
    expect(out).toContain(`mysql     mysql://tokengate_demo@127.0.0.1:${maria.port}/tokengate_demo`);
    expect(out).toContain(`created   database tokengate_demo on mysql://tokengate_demo@127.0.0.1:${maria.port}: tables customers, orders, items`);
    expect(out).not.toContain(password);
    const mysqlPort = /mysql 127\.0\.0\.1:(\d+);/.exec(out)![1];
    const blocks = tryItBlocks(out);
    const mysqlBlock = blocks.find((b) => b.includes('# 5. MySQL'))!;
    expect(mysqlBlock).toContain('MYSQL_PWD="$(npx tokengate token --demo --client svc-reporting)" mariadb');
    const r = await runCommand('bash', ['-c', `${blocks[0]}\n${mysqlBlock}`], { env: { ...env, MYSQL_PWD: '' }, timeoutMs: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/tokengate_demo@%\s+tokengate_demo/);
    expect(r.stdout).toContain('1\titem 1\n2\titem 2\n3\titem 3\n');
    await demo.waitForStdout(/"event":"connection_accepted".*"protocol":"mysql"/, 10_000); // audit lines are written in batches
    const audit = demo.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(audit.find((a) => a.event === 'connection_accepted' && a.protocol === 'mysql')).toMatchObject({ sub: 'svc-reporting', grant: 'demo-readers-mysql', role: 'reader' });

    // docs/grants.md quotes the MySQL demo's second grant line from here.
    const grantsDoc = readFileSync(join(ROOT, 'docs/grants.md'), 'utf8');
    const mysqlGrant = /^```text\n( {2}demo-writers-mysql: .*\n)```$/m.exec(grantsDoc)![1];
    const billing = (await tokengate(['token', '--demo', '--client', 'svc-billing'], { env })).stdout;
    const configFile = /config {4}(\S+)/.exec(out)![1];
    const verified = await tokengate(['verify-token', '--config', configFile, '-'], { input: billing });
    expect(verified.code).toBe(0);
    expect(verified.stdout).toContain(`grants that apply:\n  demo-writers: postgres upstream demo, databases [app], roles [writer, reader]\n${mysqlGrant}verdict: VALID\n`);

    // The MySQL examples, run as their headers say, against the demo.
    const token = (await tokengate(['token', '--demo'], { env })).stdout.trim();
    const agentEnv = { ...env, TOKENGATE_TOKEN: token, TOKENGATE_MYSQL_PORT: mysqlPort };
    const py = await runCommand('/usr/bin/python3', [join(ROOT, 'examples/pymysql_agent.py')], { env: agentEnv });
    expect([py.code, py.stderr]).toEqual([0, '']);
    expect(JSON.parse(py.stdout)).toMatchObject({ upstreamUser: 'tokengate_demo', database: 'tokengate_demo', items: [{ id: 1, name: 'item 1' }, { id: 2, name: 'item 2' }, { id: 3, name: 'item 3' }] });
    const ts = await runCommand('bash', ['-c', 'npx tsc --outDir .tmp/examples --module commonjs --target es2022 --esModuleInterop --skipLibCheck examples/mysql2-agent.ts && node .tmp/examples/mysql2-agent.js'], { env: agentEnv, timeoutMs: 120_000 });
    expect([ts.code, ts.stderr]).toEqual([0, '']);
    expect(JSON.parse(ts.stdout)).toMatchObject({ upstreamUser: 'tokengate_demo', items: [{ id: 1, name: 'item 1' }, { id: 2, name: 'item 2' }, { id: 3, name: 'item 3' }] });

    // The PostgreSQL side is still there (the embedded PGlite).
    const psql = await runCommand('bash', ['-c', `${blocks[0]}\n${blocks[1]}`], { env: { ...env, PGPASSWORD: '' }, timeoutMs: 120_000 });
    expect(psql.code).toBe(0);
    expect(psql.stdout).toContain('(5 rows)');

    demo.child.kill('SIGINT');
    expect(await demo.exited).toEqual({ code: 0, signal: null });
    // Kept after Ctrl-C, as the banner says.
    expect((await maria.sql('SELECT COUNT(*) FROM tokengate_demo.items')).trim()).toBe('10');
  } finally {
    if (demo.child.exitCode === null) demo.child.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  }
}, 300_000);
