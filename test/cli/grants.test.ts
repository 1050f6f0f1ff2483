/**
 * `tokengate grants`: what a token with given claims may reach, from the config alone. The
 * binary with a config shaped like examples/tokengate.yaml; the explanation's agreement with
 * the gateway's own matching is checked in-process.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { failedMatchKeys, grantMatches, type Principal } from '../../src/grants/match';
import type { GrantMatch } from '../../src/config/schema';
import { expectExit, runCli } from '../helpers/runCli';

const RO_PASSWORD = 'grantsRo-41c2-RECOGNISABLE';
const RW_PASSWORD = 'grantsRw-77d0-RECOGNISABLE';

const CONFIG = `
listen:
  postgres: 127.0.0.1:6432
  mysql: 127.0.0.1:6033
oidc:
  issuer: https://example.okta.com/oauth2/default
  audience: api://tokengate
  requiredScopes: [db.connect]
upstreams:
  app-pg:
    protocol: postgres
    host: 127.0.0.1
    port: 5432
    tls: disable
    databases: { app: app_production, analytics: analytics }
    roles:
      reader: { user: agent_ro, password: \${TG_GRANTS_RO} }
      writer: { user: agent_rw, passwordFile: secrets/app_rw }
  billing-mysql:
    protocol: mysql
    host: db.internal.example.com
    databases: { billing: billing_live }
    roles:
      reader: { user: tokengate_ro, password: \${TG_GRANTS_RO} }
grants:
  - name: reporting-agents
    match: { groups: [db-readers] }
    upstream: app-pg
    databases: [app, analytics]
    roles: [reader]
  - name: etl-service
    match: { clients: [0oa1etlservice], scopes: [db.write] }
    upstream: app-pg
    databases: ['*']
    roles: [reader, writer]
  - name: billing-oncall
    match: { subjects: [alice@example.com] }
    upstream: billing-mysql
    databases: [billing]
    roles: [reader]
`;

let dir: string;
let configPath: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tg-cli-grants-'));
  mkdirSync(join(dir, 'secrets'));
  writeFileSync(join(dir, 'secrets', 'app_rw'), RW_PASSWORD, { mode: 0o600 });
  configPath = join(dir, 'tokengate.yaml');
  writeFileSync(configPath, CONFIG);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function grants(args: string[]) {
  return runCli(['grants', '-c', configPath, ...args], { env: { TG_GRANTS_RO: RO_PASSWORD } });
}

function expectNoPasswords(r: { stdout: string; stderr: string }): void {
  for (const secret of [RO_PASSWORD, RW_PASSWORD]) expect(r.stdout + r.stderr).not.toContain(secret);
}

describe('tokengate grants', () => {
  test('a group member: the grant, upstream, databases (alias -> real name) and roles; why the others do not apply', async () => {
    const r = await grants(['--groups', 'db-readers,staff', '--subject', 'bob@example.com', '--scopes', 'db.connect']);
    expect(r.stderr).toBe('');
    expectExit(r, 0);
    expect(r.stdout).toBe([
      'A token with sub=bob@example.com, client=(none), groups=[db-readers, staff], scopes=[db.connect]:',
      '',
      'may reach (1 grant):',
      '  reporting-agents: postgres upstream app-pg (127.0.0.1:5432)',
      '    databases (ask for -> real name): app -> app_production, analytics -> analytics',
      '    roles (ask for -> upstream user): reader -> agent_ro',
      '',
      'Grants that do not apply:',
      '  etl-service (upstream app-pg):',
      '    - match.clients: the token has no client id and its sub "bob@example.com" is not one of [0oa1etlservice]',
      '    - match.scopes: the token lacks [db.write] (it has [db.connect]; all of [db.write] are needed)',
      '  billing-oncall (upstream billing-mysql):',
      '    - match.subjects: subject "bob@example.com" is not one of [alice@example.com]',
      '',
    ].join('\n'));
    expectNoPasswords(r);
  });

  test("a service token: --client is also its subject; '*' expands to every database", async () => {
    const r = await grants(['--client', '0oa1etlservice', '--scopes', 'db.connect', '--scopes', 'db.write']);
    expectExit(r, 0);
    expect(r.stdout).toContain('A token with sub=0oa1etlservice, client=0oa1etlservice, groups=[], scopes=[db.connect, db.write]:');
    expect(r.stdout).toContain('  etl-service: postgres upstream app-pg (127.0.0.1:5432)\n'
      + '    databases (ask for -> real name): app -> app_production, analytics -> analytics\n'
      + '    roles (ask for -> upstream user): reader -> agent_ro, writer -> agent_rw\n');
    expect(r.stdout).toContain("  reporting-agents (upstream app-pg):\n    - match.groups: the token's groups [] include none of [db-readers]\n");
  });

  test('several grants on both protocols', async () => {
    const r = await grants(['--groups', 'db-readers', '--subject', 'alice@example.com', '--scopes', 'db.connect', '--json']);
    expectExit(r, 0);
    const e = JSON.parse(r.stdout);
    expect(e.refused).toBeUndefined();
    expect(e.principal).toEqual({ sub: 'alice@example.com', groups: ['db-readers'], scopes: ['db.connect'] });
    expect(e.reachable).toEqual([
      {
        grant: 'reporting-agents', upstream: 'app-pg', protocol: 'postgres', address: '127.0.0.1:5432',
        databases: [{ alias: 'app', database: 'app_production' }, { alias: 'analytics', database: 'analytics' }],
        roles: [{ role: 'reader', user: 'agent_ro' }],
      },
      {
        grant: 'billing-oncall', upstream: 'billing-mysql', protocol: 'mysql', address: 'db.internal.example.com:3306',
        databases: [{ alias: 'billing', database: 'billing_live' }], roles: [{ role: 'reader', user: 'tokengate_ro' }],
      },
    ]);
    expect(e.notApplying).toEqual([{
      grant: 'etl-service', upstream: 'app-pg',
      failed: [
        { key: 'clients', wanted: ['0oa1etlservice'], detail: expect.stringContaining('not one of [0oa1etlservice]') },
        { key: 'scopes', wanted: ['db.write'], detail: expect.stringContaining('lacks [db.write]') },
      ],
    }]);
    expectNoPasswords(r);
  });

  test('a token without the required scopes is refused outright (exit 1), and what its grants would give is still shown', async () => {
    const r = await grants(['--groups', 'db-readers', '--subject', 'bob@example.com']);
    expectExit(r, 1);
    expect(r.stdout).toContain('is REFUSED by the gateway before any grant is considered: oidc.requiredScopes: the token lacks the required scope db.connect');
    expect(r.stdout).toContain('\n\nwere it accepted, it could reach (1 grant):\n  reporting-agents:');
    const json = await grants(['--groups', 'db-readers', '--json']);
    expectExit(json, 1);
    expect(JSON.parse(json.stdout).refused).toMatch(/^oidc\.requiredScopes: the token lacks the required scope db\.connect/);
  });

  test('no grant matches: exit 1, every grant with its failed keys', async () => {
    const r = await grants(['--groups', 'marketing', '--subject', 'eve@example.com', '--scopes', 'db.connect']);
    expectExit(r, 1);
    expect(r.stdout).toContain('may reach nothing: no grant matches it');
    expect(r.stdout).toContain('  reporting-agents (upstream app-pg):\n    - match.groups:');
    expect(r.stdout).toContain('  billing-oncall (upstream billing-mysql):\n    - match.subjects: subject "eve@example.com" is not one of [alice@example.com]');
  });

  test('a usage error exits 2 (1 means "reaches nothing")', async () => {
    const r = await grants(['--group', 'db-readers']);
    expectExit(r, 2);
    expect(r.stderr).toContain("unknown option '--group'");
  });

  test('an invalid config exits 2 with its problems', async () => {
    const r = await runCli(['grants', '-c', configPath, '--groups', 'db-readers'], { env: { TG_GRANTS_RO: undefined } });
    expectExit(r, 2);
    expect(r.stderr).toContain('environment variable TG_GRANTS_RO is not set');
  });
});

describe('failedMatchKeys explains grantMatches', () => {
  const names = fc.constantFrom('a', 'b', 'c');
  const list = fc.uniqueArray(names, { maxLength: 3 });
  const match: fc.Arbitrary<GrantMatch> = fc.record({ groups: list, clients: list, scopes: list, subjects: list }, { requiredKeys: [] });
  const principal: fc.Arbitrary<Principal> = fc.record({ sub: names, clientId: fc.option(names, { nil: undefined }), groups: list, scopes: list });

  test('a match with keys holds exactly when no key failed', () => {
    fc.assert(fc.property(match, principal, (m, who) => {
      if (Object.keys(m).length === 0) return;
      expect(grantMatches(m, who)).toBe(failedMatchKeys(m, who).length === 0);
    }));
  });
});
