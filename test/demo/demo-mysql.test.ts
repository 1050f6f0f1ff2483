/**
 * `tokengate demo --mysql URL`: the demo also serves a real MariaDB (a throwaway server) on a
 * MySQL listener. The printed mariadb command works as printed, the PostgreSQL side keeps
 * working, and Ctrl-C still stops everything.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMariadbServer, type MariadbServer } from '../helpers/mariadbServer';
import { buildOnce, runCommand, startBackground } from './cli';

const PASSWORD = 'demo-My-Secret-3b7e';

let maria: MariadbServer;
beforeAll(async () => {
  [maria] = await Promise.all([startMariadbServer(), buildOnce()]);
  await maria.sql(`CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, total DECIMAL(10,2));
    INSERT INTO shop.orders VALUES (1, 12.50), (2, 99.00);
    CREATE USER 'tg_demo'@'%' IDENTIFIED BY '${PASSWORD}'; GRANT SELECT, INSERT ON shop.* TO 'tg_demo'@'%';`);
}, 180_000);
afterAll(() => maria?.stop());

function tryItBlocks(banner: string): string[] {
  return banner.slice(banner.indexOf('Try it from another terminal:'), banner.indexOf('The audit log')).split('\n\n').slice(1).map((b) => b.trim()).filter(Boolean);
}

test('the printed mariadb command reaches MariaDB through the MySQL listener with a token', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'tg-demo-my-'));
  const demo = startBackground(['demo', '--port', '0', '--mysql-port', '0', '--mysql', `mysql://tg_demo:${PASSWORD}@127.0.0.1:${maria.port}/shop`], { env: { TMPDIR: tmp } });
  try {
    await demo.waitForStdout(/The audit log/, 120_000);
    expect(demo.stdout()).toMatch(/gateway {3}postgres 127\.0\.0\.1:\d+, mysql 127\.0\.0\.1:\d+; database alias "app"/);
    expect(demo.stdout()).toContain(`mysql     mysql://tg_demo@127.0.0.1:${maria.port}/shop`);
    expect(demo.stdout()).not.toContain(PASSWORD);
    const blocks = tryItBlocks(demo.stdout());
    const mysqlBlock = blocks.find((b) => b.includes('# 4. MySQL'))!;
    expect(mysqlBlock).toContain('MYSQL_PWD="$(npx tokengate token --demo --client svc-reporting)" mariadb');
    const r = await runCommand('bash', ['-c', `${blocks[0]}\n${mysqlBlock}`], { env: { TMPDIR: tmp, MYSQL_PWD: '' }, timeoutMs: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/tg_demo@\S+\s+shop/);
    await demo.waitForStdout(/"event":"connection_accepted".*"protocol":"mysql"/, 10_000); // audit lines are written in batches
    const audit = demo.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(audit.find((a) => a.event === 'connection_accepted' && a.protocol === 'mysql')).toMatchObject({ sub: 'svc-reporting', grant: 'demo-readers-mysql', role: 'reader' });

    // The PostgreSQL side is still there (the embedded PGlite).
    const psql = await runCommand('bash', ['-c', `${blocks[0]}\n${blocks[1]}`], { env: { TMPDIR: tmp, PGPASSWORD: '' }, timeoutMs: 120_000 });
    expect(psql.code).toBe(0);
    expect(psql.stdout).toContain('(5 rows)');

    demo.child.kill('SIGINT');
    expect(await demo.exited).toEqual({ code: 0, signal: null });
  } finally {
    if (demo.child.exitCode === null) demo.child.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  }
}, 240_000);
