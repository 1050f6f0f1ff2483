import { parseConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import type { Identity } from '../../src/identity/types';
import { allowedAccess, decide, matchingGrants, type Decision, type Principal } from '../../src/grants/decide';
import { ENV, tempDir } from '../config/helpers';

/** A gateway with a postgres and a mysql upstream that share the alias "app". */
const YAML = `
listen: { postgres: 127.0.0.1:6432, mysql: 127.0.0.1:6033 }
oidc: { issuer: https://example.okta.com/oauth2/default, audience: api://tokengate }
upstreams:
  app-pg:
    protocol: postgres
    host: 127.0.0.1
    databases: { app: app_production, analytics: analytics_db }
    roles:
      reader: { user: agent_ro, password: \${APP_RO_PASSWORD} }
      writer: { user: agent_rw, password: \${APP_RO_PASSWORD} }
      admin: { user: agent_admin, password: \${APP_RO_PASSWORD} }
  app-my:
    protocol: mysql
    host: 127.0.0.1
    databases: { app: app_mysql, billing: billing }
    roles:
      reader: { user: my_ro, password: \${MY_PASSWORD} }
grants:
  - name: readers
    match: { groups: [db-readers, analysts] }
    upstream: app-pg
    databases: [app, analytics]
    roles: [reader]
  - name: writers
    match: { groups: [db-writers] }
    upstream: app-pg
    databases: [app]
    roles: [reader, writer]
  - name: etl-service
    match: { clients: [0oa-etl], scopes: [db.connect, db.write] }
    upstream: app-pg
    databases: ['*']
    roles: [writer]
  - name: oncall
    match: { subjects: [alice@example.com] }
    upstream: app-my
    databases: [app, billing]
    roles: [reader]
  - name: group-and-scope
    match: { groups: [contractors], scopes: [db.connect] }
    upstream: app-pg
    databases: [analytics]
    roles: [reader]
`;

const config: Config = parseConfig(YAML, 'decide.yaml', ENV, tempDir());

function who(p: Partial<Principal>): Principal {
  return { sub: 'someone@example.com', groups: [], scopes: [], ...p };
}

function names(c: Config, p: Principal): string[] {
  return matchingGrants(c, p).map((g) => g.name);
}

function denied(d: Decision): { reason: string; message: string } {
  if (d.ok) throw new Error(`expected a denial, got grant ${d.grant.name}`);
  return { reason: d.reason, message: d.message };
}

describe('matchingGrants', () => {
  test('groups: any of the listed groups', () => {
    expect(names(config, who({ groups: ['analysts'] }))).toEqual(['readers']);
    expect(names(config, who({ groups: ['x', 'db-writers', 'db-readers'] }))).toEqual(['readers', 'writers']);
    expect(names(config, who({ groups: ['db-reader'] }))).toEqual([]);
  });

  test('clients match cid, or sub when there is no cid; scopes must all be present', () => {
    expect(names(config, who({ clientId: '0oa-etl', scopes: ['db.connect', 'db.write'] }))).toEqual(['etl-service']);
    expect(names(config, who({ clientId: '0oa-etl', scopes: ['db.connect'] }))).toEqual([]);
    expect(names(config, who({ sub: '0oa-etl', scopes: ['db.write', 'db.connect', 'extra'] }))).toEqual(['etl-service']);
    // A present cid wins over sub: a user token whose sub happens to equal a client id does not match.
    expect(names(config, who({ sub: '0oa-etl', clientId: '0oa-other', scopes: ['db.connect', 'db.write'] }))).toEqual([]);
  });

  test('subjects match sub exactly', () => {
    expect(names(config, who({ sub: 'alice@example.com' }))).toEqual(['oncall']);
    expect(names(config, who({ sub: 'ALICE@example.com' }))).toEqual([]);
  });

  test('every key present must hold', () => {
    expect(names(config, who({ groups: ['contractors'], scopes: ['db.connect'] }))).toEqual(['group-and-scope']);
    expect(names(config, who({ groups: ['contractors'] }))).toEqual([]);
    expect(names(config, who({ scopes: ['db.connect'] }))).toEqual([]);
  });

  test('fails closed on hand-built grants with no keys or empty lists', () => {
    const open: Config = { ...config, grants: [
      { name: 'empty', match: {}, upstream: 'app-pg', databases: ['app'], roles: ['reader'] },
      { name: 'empty-scopes', match: { scopes: [] }, upstream: 'app-pg', databases: ['app'], roles: ['reader'] },
      { name: 'empty-groups', match: { groups: [] }, upstream: 'app-pg', databases: ['app'], roles: ['reader'] },
    ] };
    expect(names(open, who({ groups: ['anything'], scopes: ['db.connect'] }))).toEqual([]);
  });

  test('an Identity from the verifier satisfies Principal', () => {
    const id: Identity = { sub: '0oa-etl', clientId: '0oa-etl', groups: [], scopes: ['db.connect', 'db.write'], issuer: 'x', expiresAt: 0 };
    expect(names(config, id)).toEqual(['etl-service']);
  });
});

describe('decide', () => {
  test('grants a reader on a granted database, returning the real name and credentials', () => {
    const d = decide(config, who({ groups: ['db-readers'] }), 'postgres', 'analytics', 'reader');
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.grant.name).toBe('readers');
    expect(d.upstream.name).toBe('app-pg');
    expect(d.role.user).toBe('agent_ro');
    expect(d.alias).toBe('analytics');
    expect(d.database).toBe('analytics_db');
  });

  test('picks the grant that covers the requested role when several match', () => {
    const d = decide(config, who({ groups: ['db-readers', 'db-writers'] }), 'postgres', 'app', 'writer');
    expect(d.ok && d.grant.name).toBe('writers');
  });

  test('Okta client-credentials token: no groups, matched on cid + scopes, "*" covers every alias', () => {
    const svc = who({ sub: '0oa-etl', clientId: '0oa-etl', scopes: ['db.connect', 'db.write'] });
    for (const alias of ['app', 'analytics']) {
      const d = decide(config, svc, 'postgres', alias, 'writer');
      expect(d.ok && { grant: d.grant.name, user: d.role.user }).toEqual({ grant: 'etl-service', user: 'agent_rw' });
    }
    expect(allowedAccess(config, svc)).toEqual([
      { grant: 'etl-service', upstream: 'app-pg', protocol: 'postgres', databases: ['app', 'analytics'], roles: ['writer'] },
    ]);
  });

  test('aliases are looked up only among upstreams of the requested protocol', () => {
    const alice = who({ sub: 'alice@example.com' });
    const my = decide(config, alice, 'mysql', 'app', 'reader');
    expect(my.ok && { upstream: my.upstream.name, database: my.database, user: my.role.user }).toEqual({ upstream: 'app-my', database: 'app_mysql', user: 'my_ro' });
    // The same alias over postgres is a different database, which alice is not granted.
    expect(denied(decide(config, alice, 'postgres', 'app', 'reader'))).toEqual({
      reason: 'database_not_granted',
      message: 'database "app" is not granted to you; your grants allow no postgres databases',
    });
    // A mysql-only alias does not exist for postgres clients.
    expect(denied(decide(config, alice, 'postgres', 'billing', 'reader')).reason).toBe('unknown_database');
    const reader = decide(config, who({ groups: ['db-readers'] }), 'postgres', 'app', 'reader');
    expect(reader.ok && reader.database).toBe('app_production');
  });

  test('no_matching_grant lists the claims and what to ask for', () => {
    expect(denied(decide(config, who({ sub: 'bob', clientId: '0oa-bob', groups: ['sales'], scopes: ['db.connect'] }), 'postgres', 'app', 'reader'))).toEqual({
      reason: 'no_matching_grant',
      message: 'no grant matches your token (sub=bob, client=0oa-bob, groups=[sales], scopes=[db.connect]); ask a DBA to add a grant for one of your groups or your client id',
    });
    expect(denied(decide(config, who({ sub: 'bob' }), 'mysql', 'app', 'reader')).message).toContain('(sub=bob, client=(none), groups=[], scopes=[])');
  });

  test('no_matching_grant bounds huge claims', () => {
    const groups = Array.from({ length: 500 }, (_, i) => `group-${i}`);
    const d = denied(decide(config, who({ sub: 'x'.repeat(10_000), groups }), 'postgres', 'app', 'reader'));
    expect(d.message.length).toBeLessThan(1000);
    expect(d.message).toContain('(+480 more)');
  });

  test('unknown_database names the known databases of that protocol', () => {
    expect(denied(decide(config, who({ groups: ['db-readers'] }), 'postgres', 'nope', 'reader'))).toEqual({
      reason: 'unknown_database',
      message: 'database "nope" does not exist on this gateway; known databases: app, analytics; your grants allow databases: app, analytics',
    });
    expect(denied(decide(config, who({ sub: 'alice@example.com' }), 'mysql', 'analytics', 'reader')).message)
      .toBe('database "analytics" does not exist on this gateway; known databases: app, billing; your grants allow databases: app, billing');
  });

  test('database_not_granted says which databases are allowed', () => {
    expect(denied(decide(config, who({ groups: ['db-writers'] }), 'postgres', 'analytics', 'reader'))).toEqual({
      reason: 'database_not_granted',
      message: 'database "analytics" is not granted to you; your grants allow databases: app',
    });
  });

  test('role_not_granted says which roles are allowed on that database', () => {
    expect(denied(decide(config, who({ groups: ['db-readers'] }), 'postgres', 'app', 'admin'))).toEqual({
      reason: 'role_not_granted',
      message: 'role "admin" is not granted to you on database "app"; your grants allow: reader',
    });
    expect(denied(decide(config, who({ groups: ['db-readers', 'db-writers'] }), 'postgres', 'app', 'nosuchrole')).message)
      .toBe('role "nosuchrole" is not granted to you on database "app"; your grants allow: reader, writer');
  });

  test('names that collide with Object.prototype are just unknown', () => {
    const p = who({ groups: ['db-readers'] });
    expect(denied(decide(config, p, 'postgres', '__proto__', 'reader')).reason).toBe('unknown_database');
    expect(denied(decide(config, p, 'postgres', 'constructor', 'reader')).reason).toBe('unknown_database');
    expect(denied(decide(config, p, 'postgres', 'app', 'toString')).reason).toBe('role_not_granted');
    expect(denied(decide(config, p, 'postgres', 'app', '__proto__')).reason).toBe('role_not_granted');
  });
});

describe('allowedAccess', () => {
  test('lists every matching grant, optionally for one protocol', () => {
    const p = who({ sub: 'alice@example.com', groups: ['db-writers'] });
    expect(allowedAccess(config, p)).toEqual([
      { grant: 'writers', upstream: 'app-pg', protocol: 'postgres', databases: ['app'], roles: ['reader', 'writer'] },
      { grant: 'oncall', upstream: 'app-my', protocol: 'mysql', databases: ['app', 'billing'], roles: ['reader'] },
    ]);
    expect(allowedAccess(config, p, 'mysql').map((a) => a.grant)).toEqual(['oncall']);
    expect(allowedAccess(config, who({}))).toEqual([]);
  });
});
