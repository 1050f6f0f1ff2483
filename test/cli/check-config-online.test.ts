/**
 * `tokengate check-config --online`: the real binary logs in to the local PostgreSQL (127.0.0.1:5432)
 * and MariaDB (127.0.0.1:3306) with the gateway's own login code and fetches the dev issuer's
 * discovery document and keys (the issuer runs in this test process). `runOnlineChecks`, which
 * `start` also runs, is checked in-process for its classification.
 */
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import type { DevIssuer } from '../../src/dev/devIssuer';
import { parseConfig } from '../../src/config/load';
import { runOnlineChecks } from '../../src/cli/onlineChecks';
import { startTestIssuer } from '../helpers/issuer';
import { startPgCluster } from '../helpers/pgCluster';
import { expectExit, runCli } from '../helpers/runCli';

const MARIA_USER = 'tgcli_online';
const MARIA_PASSWORD = `mariaPw-${process.pid}-RECOGNISABLE`;
const WRONG_PASSWORD = 'wrongPw-2e7a-RECOGNISABLE';
const PG_PASSWORD = 'pgPw-unused-under-trust-RECOGNISABLE';
const ENV = { TG_ONLINE_PG: PG_PASSWORD, TG_ONLINE_MARIA: MARIA_PASSWORD, TG_ONLINE_WRONG: WRONG_PASSWORD };

let issuer: DevIssuer;
let maria: mysql.Connection;
let closedPort: number;
let dir: string;

/** A port nothing listens on: bound, then closed. */
async function freeClosedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

function config(o: { issuer: string; upstreams: string }): string {
  return `
listen:
  postgres: 127.0.0.1:0
oidc:
  issuer: ${o.issuer}
  audience: api://tokengate
  devIssuer: true
  fetchTimeout: 2s
upstreams:
${o.upstreams}
`;
}

const PG_OK = `
  pg-local:
    protocol: postgres
    host: 127.0.0.1
    port: 5432
    tls: disable
    pool: { acquireTimeout: 5s }
    databases: { main: test }
    roles:
      admin: { user: postgres, password: \${TG_ONLINE_PG} }`;

const MARIA_OK = `
  maria:
    protocol: mysql
    host: 127.0.0.1
    port: 3306
    tls: disable
    pool: { acquireTimeout: 5s }
    databases: { main: test }
    roles:
      reader: { user: ${MARIA_USER}, password: \${TG_ONLINE_MARIA} }`;

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tg-cli-online-'));
  issuer = await startTestIssuer();
  closedPort = await freeClosedPort();
  maria = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root' });
  await maria.query(`DROP USER IF EXISTS '${MARIA_USER}'@'%'`);
  await maria.query(`CREATE USER '${MARIA_USER}'@'%' IDENTIFIED BY '${MARIA_PASSWORD}'`);
  await maria.query(`GRANT SELECT ON test.* TO '${MARIA_USER}'@'%'`);
});

afterAll(async () => {
  await maria?.query(`DROP USER IF EXISTS '${MARIA_USER}'@'%'`);
  await maria?.end();
  await issuer?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function expectNoPasswords(r: { stdout: string; stderr: string }): void {
  for (const secret of [MARIA_PASSWORD, WRONG_PASSWORD, PG_PASSWORD]) expect(r.stdout + r.stderr).not.toContain(secret);
}

describe('tokengate check-config --online', () => {
  test('every login and the issuer answer: each is reported ok, exit 0', async () => {
    const path = write('ok.yaml', config({ issuer: issuer.issuer, upstreams: PG_OK + MARIA_OK }));
    const r = await runCli(['check-config', '--online', '-c', path], { env: ENV });
    expect(r.stderr).toBe('');
    expectExit(r, 0);
    const online = r.stdout.slice(r.stdout.indexOf('Online checks:'));
    expect(online).toMatch(/^ {2}ok {4}upstream pg-local role admin database main: logged in as postgres@127\.0\.0\.1:5432\/test \(PostgreSQL \d+/m);
    expect(online).toMatch(new RegExp(`^ {2}ok {4}upstream maria role reader database main: logged in as ${MARIA_USER}@127\\.0\\.0\\.1:3306/test \\(.*MariaDB.*\\)$`, 'm'));
    expect(online).toContain(`  ok    issuer discovery: ${issuer.issuer}/.well-known/openid-configuration names issuer ${issuer.issuer} and keys at ${issuer.jwksUri}`);
    expect(online).toContain(`  ok    issuer keys: fetched from ${issuer.jwksUri}`);
    expect(online.trimEnd().split('\n').pop()).toBe('all 4 checks passed');
    expect(issuer.requestCount('v1/keys')).toBeGreaterThan(0);
    expectNoPasswords(r);
  });

  test('a wrong password and an unknown role are configuration errors, a closed port is unreachable; exit 1', async () => {
    const upstreams = `${PG_OK}
      ghost: { user: tgcli_online_no_such_role, password: \${TG_ONLINE_PG} }
${MARIA_OK}
      wrong: { user: ${MARIA_USER}, password: \${TG_ONLINE_WRONG} }
  gone:
    protocol: postgres
    host: 127.0.0.1
    port: ${closedPort}
    tls: disable
    pool: { acquireTimeout: 5s }
    databases: { elsewhere: app }
    roles:
      reader: { user: agent_ro, password: \${TG_ONLINE_PG} }`;
    const path = write('bad.yaml', config({ issuer: issuer.issuer, upstreams }));
    const r = await runCli(['check-config', '--online', '-c', path], { env: ENV });
    expectExit(r, 1);
    const online = r.stdout.slice(r.stdout.indexOf('Online checks:'));
    expect(online).toContain('  ok    upstream pg-local role admin database main: logged in as postgres@');
    expect(online).toMatch(/ {2}FAIL {2}upstream pg-local role ghost database main: configuration error \(retrying will not fix it\): .*refused the login: FATAL 28000 role "tgcli_online_no_such_role" does not exist/);
    expect(online).toMatch(new RegExp(`  FAIL  upstream maria role wrong database main: configuration error \\(retrying will not fix it\\): .*1045.*Access denied for user '${MARIA_USER}'`));
    expect(online).toMatch(new RegExp(`  FAIL  upstream gone role reader database elsewhere: unreachable or unavailable: Cannot connect to upstream PostgreSQL agent_ro@127\\.0\\.0\\.1:${closedPort}/app: connect ECONNREFUSED`));
    expect(online).toContain('  ok    issuer keys:');
    expect(online.trimEnd().split('\n').pop()).toBe('3 of 7 checks failed');
    expectNoPasswords(r);
  });

  test('an issuer nobody answers for: discovery unreachable and keys not fetched, exit 1', async () => {
    const path = write('no-issuer.yaml', config({ issuer: `http://127.0.0.1:${closedPort}/oauth2/default`, upstreams: PG_OK }));
    const r = await runCli(['check-config', '--online', '-c', path], { env: ENV });
    expectExit(r, 1);
    expect(r.stdout).toContain(`  FAIL  issuer discovery: unreachable or unavailable: could not reach the identity provider at http://127.0.0.1:${closedPort}/oauth2/default/.well-known/openid-configuration`);
    expect(r.stdout).toContain('  FAIL  issuer keys: unreachable or unavailable: not fetched: the keys URL comes from the discovery document');
  });

  test('without --online nothing is contacted', async () => {
    const before = issuer.requestCount('/oauth2/default/.well-known/openid-configuration');
    const path = write('offline.yaml', config({ issuer: issuer.issuer, upstreams: PG_OK }));
    const r = await runCli(['check-config', '-c', path], { env: ENV });
    expectExit(r, 0);
    expect(r.stdout).not.toContain('Online checks:');
    expect(issuer.requestCount('/oauth2/default/.well-known/openid-configuration')).toBe(before);
  });
});

describe('runOnlineChecks', () => {
  test('a wrong PostgreSQL password (a server that requires SCRAM) is a configuration error', async () => {
    const cluster = await startPgCluster();
    try {
      const upstream = `
  pg-scram:
    protocol: postgres
    host: 127.0.0.1
    port: ${cluster.port}
    tls: disable
    databases: { app: app }
    roles:
      right: { user: tg_scram, password: \${TG_ONLINE_RIGHT} }
      wrong: { user: tg_scram, password: \${TG_ONLINE_WRONG} }`;
      const cfg = parseConfig(config({ issuer: issuer.issuer, upstreams: upstream }), 'test', { ...ENV, TG_ONLINE_RIGHT: cluster.passwords.tg_scram }, dir);
      const results = await runOnlineChecks(cfg);
      expect(results.slice(0, 2)).toEqual([
        { name: 'upstream pg-scram role right database app', ok: true, detail: expect.stringContaining(`logged in as tg_scram@127.0.0.1:${cluster.port}/app`) },
        { name: 'upstream pg-scram role wrong database app', ok: false, problem: 'configuration', detail: expect.stringContaining('FATAL 28P01 password authentication failed for user "tg_scram"') },
      ]);
      expect(JSON.stringify(results)).not.toContain(WRONG_PASSWORD);
    } finally {
      await cluster.stop();
    }
  }, 120_000);

  test('an issuer whose metadata names another issuer is a configuration error', async () => {
    const other = await startTestIssuer({ metadataOverrides: { issuer: 'http://127.0.0.1:1/oauth2/elsewhere' } });
    try {
      const cfg = parseConfig(config({ issuer: other.issuer, upstreams: PG_OK }), 'test', ENV, dir);
      const results = await runOnlineChecks(cfg);
      expect(results.map((r) => [r.name, r.ok, r.problem])).toEqual([
        ['upstream pg-local role admin database main', true, undefined],
        ['issuer discovery', false, 'configuration'],
        ['issuer keys', false, 'configuration'],
      ]);
      expect(results[1].detail).toContain('they must match exactly');
    } finally {
      await other.stop();
    }
  });
});
