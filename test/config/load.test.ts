import { availableParallelism } from 'node:os';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { stringify } from 'yaml';
import {
  ConfigError, configWarnings, defaultConfigPaths, loadConfig, maskedLine, parseConfig, resolveConfigPath,
} from '../../src/config/load';
import { Secret } from '../../src/config/secret';
import {
  configError, ENV, MY_PASSWORD, parseDoc, RO_PASSWORD, RW_PASSWORD, secretsDir, tempDir, withDoc, baseDoc,
} from './helpers';

/** The example from the issue, verbatim except that passwordFile points at a real temp file. */
function issueExample(passwordFile: string): string {
  return `
listen: { postgres: 127.0.0.1:6432, mysql: 127.0.0.1:6033, admin: 127.0.0.1:9187 }
tls: { certFile: /etc/tokengate/tls.crt, keyFile: /etc/tokengate/tls.key, allowPlaintextFromLoopback: true, allowPlaintextFromAnywhere: false }
oidc:
  issuer: https://example.okta.com/oauth2/default
  audience: api://tokengate
  algorithms: [RS256]
  clockSkew: 30s
  maxTokenLifetime: 1h
  requiredScopes: [db.connect]
  groupsClaim: groups
  fetchTimeout: 5s
  jwksCooldown: 30s
  jwksCacheMaxAge: 10m
  devIssuer: false
upstreams:
  app-pg:
    protocol: postgres
    host: 127.0.0.1
    port: 5432
    tls: disable
    pool: { maxConnections: 20, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 10s }
    databases: { app: app_production, analytics: analytics }
    roles:
      reader: { user: agent_ro, password: \${APP_RO_PASSWORD} }
      writer: { user: agent_rw, passwordFile: ${passwordFile} }
grants:
  - name: reporting-agents
    match: { groups: [db-readers] }
    upstream: app-pg
    databases: [app, analytics]
    roles: [reader]
audit: { file: stdout, queries: true, maxQueryBytes: 4096 }
session: { authTimeout: 15s, expiryGrace: 0s }
`;
}

function problemPaths(err: ConfigError): string[] {
  return err.problems.map((p) => p.path);
}

describe('the example from the issue', () => {
  test('parses into the typed Config with resolved secrets', () => {
    const dir = secretsDir();
    const config = parseConfig(issueExample(join(dir, 'secrets', 'app_rw')), 'issue.yaml', ENV, dir);
    expect(config.source).toBe('issue.yaml');
    expect(config.listen).toEqual({
      postgres: { host: '127.0.0.1', port: 6432 },
      mysql: { host: '127.0.0.1', port: 6033 },
      admin: { host: '127.0.0.1', port: 9187 },
    });
    expect(config.tls).toEqual({
      certFile: '/etc/tokengate/tls.crt', keyFile: '/etc/tokengate/tls.key',
      allowPlaintextFromLoopback: true, allowPlaintextFromAnywhere: false,
    });
    expect(config.oidc).toEqual({
      issuer: 'https://example.okta.com/oauth2/default', audience: ['api://tokengate'], jwksUri: undefined,
      algorithms: ['RS256'], clockSkewMs: 30_000, maxTokenLifetimeMs: 3_600_000, requiredScopes: ['db.connect'],
      groupsClaim: 'groups', fetchTimeoutMs: 5000, jwksCooldownMs: 30_000, jwksCacheMaxAgeMs: 600_000, devIssuer: false,
    });
    const up = config.upstreams['app-pg'];
    expect(up).toMatchObject({
      name: 'app-pg', protocol: 'postgres', host: '127.0.0.1', port: 5432, tls: 'disable',
      pool: { maxConnections: 20, idleTimeoutMs: 300_000, maxLifetimeMs: 3_600_000, acquireTimeoutMs: 10_000 },
      databases: { app: 'app_production', analytics: 'analytics' },
    });
    expect(up.roles.reader.user).toBe('agent_ro');
    expect(up.roles.reader.password).toBeInstanceOf(Secret);
    expect(up.roles.reader.password.reveal()).toBe(RO_PASSWORD);
    expect(up.roles.reader.password.source).toBe('env APP_RO_PASSWORD');
    expect(up.roles.writer.password.reveal()).toBe(RW_PASSWORD); // trailing newline stripped
    expect(up.roles.writer.password.source).toBe(`file ${join(dir, 'secrets', 'app_rw')}`);
    expect(config.grants).toEqual([{
      name: 'reporting-agents', match: { groups: ['db-readers'] }, upstream: 'app-pg', databases: ['app', 'analytics'], roles: ['reader'],
    }]);
    expect(config.audit).toEqual({ file: 'stdout', queries: true, maxQueryBytes: 4096, onFailure: 'refuse' });
    expect(config.session).toEqual({ authTimeoutMs: 15_000, expiryGraceMs: 0, shutdownGraceMs: 30_000 });
  });

  test('examples/tokengate.yaml parses, with passwordFile relative to the config directory', () => {
    const dir = secretsDir();
    const text = readFileSync(join(__dirname, '../../examples/tokengate.yaml'), 'utf8');
    const config = parseConfig(text, 'examples/tokengate.yaml', ENV, dir);
    expect(Object.keys(config.upstreams)).toEqual(['app-pg', 'billing-mysql']);
    expect(config.upstreams['app-pg'].roles.writer.password.reveal()).toBe(RW_PASSWORD);
    expect(config.upstreams['billing-mysql'].roles.reader.password.reveal()).toBe(MY_PASSWORD);
    expect(config.grants.map((g) => g.name)).toEqual(['reporting-agents', 'etl-service', 'billing-oncall']);
  });
});

describe('defaults', () => {
  test('a minimal config gets every documented default', () => {
    const config = parseDoc(baseDoc());
    expect(config.tls).toEqual({ certFile: undefined, keyFile: undefined, allowPlaintextFromLoopback: true, allowPlaintextFromAnywhere: false });
    expect(config.oidc).toMatchObject({
      algorithms: ['RS256'], clockSkewMs: 30_000, maxTokenLifetimeMs: undefined, requiredScopes: [], groupsClaim: 'groups',
      fetchTimeoutMs: 5000, jwksCooldownMs: 30_000, jwksCacheMaxAgeMs: 600_000, devIssuer: false, jwksUri: undefined,
    });
    const up = config.upstreams['app-pg'];
    expect(up.port).toBe(5432);
    expect(up.tls).toBe('prefer');
    expect(up.pool).toEqual({ maxConnections: 20, idleTimeoutMs: 300_000, maxLifetimeMs: 3_600_000, acquireTimeoutMs: 10_000 });
    expect(config.audit).toEqual({ file: 'stdout', queries: true, maxQueryBytes: 4096, onFailure: 'refuse' });
    expect(config.session).toEqual({ authTimeoutMs: 15_000, expiryGraceMs: 0, shutdownGraceMs: 30_000 });
  });

  test('mysql upstreams default to port 3306; audience may be a list; grants may be absent', () => {
    const config = parseDoc(withDoc((d) => {
      d.upstreams['app-pg'].protocol = 'mysql';
      d.oidc.audience = ['api://a', 'api://b'];
      delete d.grants;
    }));
    expect(config.upstreams['app-pg'].port).toBe(3306);
    expect(config.oidc.audience).toEqual(['api://a', 'api://b']);
    expect(config.grants).toEqual([]);
  });

  test('IPv6 listeners and relative audit/TLS paths', () => {
    const dir = tempDir();
    const config = parseDoc(withDoc((d) => {
      d.listen = { postgres: '[::1]:6432' };
      d.tls = { certFile: 'tls.crt', keyFile: '/abs/tls.key' };
      d.audit = { file: 'audit.log' };
    }), ENV, dir);
    expect(config.listen.postgres).toEqual({ host: '::1', port: 6432 });
    expect(config.tls.certFile).toBe(join(dir, 'tls.crt'));
    expect(config.tls.keyFile).toBe('/abs/tls.key');
    expect(config.audit.file).toBe(join(dir, 'audit.log'));
  });
});

describe('every problem names its key path', () => {
  const cases: [string, (d: Record<string, any>) => void, string, RegExp][] = [
    ['bad port', (d) => { d.upstreams['app-pg'].port = 'abc'; }, 'upstreams.app-pg.port', /expected an integer 1-65535, got "abc"/],
    ['port out of range', (d) => { d.upstreams['app-pg'].port = 70000; }, 'upstreams.app-pg.port', /1-65535, got 70000/],
    ['unknown top-level key', (d) => { d.grant = []; }, 'grant', /unknown key.*did you mean "grants"/],
    ['unknown nested key', (d) => { d.upstreams['app-pg'].prot = 'x'; }, 'upstreams.app-pg.prot', /unknown key.*did you mean "port"/],
    ['unknown role key', (d) => { d.upstreams['app-pg'].roles.reader.pasword = 'x'; }, 'upstreams.app-pg.roles.reader.pasword', /did you mean "password"/],
    ['unknown match key', (d) => { d.grants[0].match.group = ['x']; }, 'grants[0].match.group', /did you mean "groups"/],
    ['bad listen', (d) => { d.listen.postgres = '6432'; }, 'listen.postgres', /expected "host:port"/],
    ['numeric listen', (d) => { d.listen.postgres = 6432; }, 'listen.postgres', /expected "host:port" such as 127.0.0.1:6432.*got "6432"/],
    ['bare IPv6 listen', (d) => { d.listen.postgres = '::1:6432'; }, 'listen.postgres', /brackets/],
    ['no client listener', (d) => { d.listen = { admin: '127.0.0.1:9187' }; }, 'listen', /at least one client listener/],
    ['missing listen', (d) => { delete d.listen; }, 'listen', /is required/],
    ['missing oidc', (d) => { delete d.oidc; }, 'oidc', /is required/],
    ['missing issuer', (d) => { delete d.oidc.issuer; }, 'oidc.issuer', /is required/],
    ['empty audience', (d) => { d.oidc.audience = []; }, 'oidc.audience', /at least one/],
    ['missing audience', (d) => { delete d.oidc.audience; }, 'oidc.audience', /is required: expected a string or a list of strings$/],
    ['bad duration', (d) => { d.oidc.clockSkew = '30 parsecs'; }, 'oidc.clockSkew', /expected a duration.*got "30 parsecs"/],
    ['bad pool duration', (d) => { d.upstreams['app-pg'].pool = { idleTimeout: 'soon' }; }, 'upstreams.app-pg.pool.idleTimeout', /expected a duration/],
    ['zero acquire timeout', (d) => { d.upstreams['app-pg'].pool = { acquireTimeout: 0 }; }, 'upstreams.app-pg.pool.acquireTimeout', /at least/],
    ['bad maxConnections', (d) => { d.upstreams['app-pg'].pool = { maxConnections: 0 }; }, 'upstreams.app-pg.pool.maxConnections', /1-10000/],
    ['bad boolean', (d) => { d.tls = { allowPlaintextFromAnywhere: 'yes' }; }, 'tls.allowPlaintextFromAnywhere', /expected true or false, got "yes"/],
    ['alg none', (d) => { d.oidc.algorithms = ['none']; }, 'oidc.algorithms', /"none" is not allowed/],
    ['alg HS256', (d) => { d.oidc.algorithms = ['RS256', 'HS256']; }, 'oidc.algorithms', /"HS256" is not allowed.*shared-secret/],
    ['alg unknown', (d) => { d.oidc.algorithms = ['RS999']; }, 'oidc.algorithms', /unknown algorithm "RS999"/],
    ['bad protocol', (d) => { d.upstreams['app-pg'].protocol = 'oracle'; }, 'upstreams.app-pg.protocol', /one of postgres, mysql, got "oracle"/],
    ['missing protocol', (d) => { delete d.upstreams['app-pg'].protocol; }, 'upstreams.app-pg.protocol', /is required/],
    ['missing host', (d) => { delete d.upstreams['app-pg'].host; }, 'upstreams.app-pg.host', /is required/],
    ['bad upstream tls', (d) => { d.upstreams['app-pg'].tls = 'on'; }, 'upstreams.app-pg.tls', /disable, prefer, require, verify-full/],
    ['verify-full without caFile', (d) => { d.upstreams['app-pg'].tls = 'verify-full'; }, 'upstreams.app-pg.caFile', /required when tls is verify-full/],
    ['no databases', (d) => { d.upstreams['app-pg'].databases = {}; }, 'upstreams.app-pg.databases', /at least one/],
    ['bad real db name', (d) => { d.upstreams['app-pg'].databases.app = 5; }, 'upstreams.app-pg.databases.app', /real database name/],
    ['bad alias', (d) => { d.upstreams['app-pg'].databases['my db'] = 'x'; }, 'upstreams.app-pg.databases.my db', /not valid/],
    ['reserved alias', (d) => { d.upstreams['app-pg'].databases.constructor = 'x'; }, 'upstreams.app-pg.databases.constructor', /reserved/],
    ['no roles', (d) => { delete d.upstreams['app-pg'].roles; }, 'upstreams.app-pg.roles', /is required/],
    ['role without user', (d) => { delete d.upstreams['app-pg'].roles.reader.user; }, 'upstreams.app-pg.roles.reader.user', /is required/],
    ['role without password', (d) => { delete d.upstreams['app-pg'].roles.reader.password; }, 'upstreams.app-pg.roles.reader', /needs a password/],
    ['both password kinds', (d) => { d.upstreams['app-pg'].roles.reader.passwordFile = '/x'; }, 'upstreams.app-pg.roles.reader', /not both/],
    ['no upstreams', (d) => { d.upstreams = {}; }, 'upstreams', /is required/],
    ['grants not a list', (d) => { d.grants = { a: 1 }; }, 'grants', /expected a list of grants/],
    ['grant without name', (d) => { delete d.grants[0].name; }, 'grants[0].name', /is required/],
    ['grant without match', (d) => { delete d.grants[0].match; }, 'grants[0].match', /is required/],
    ['empty match', (d) => { d.grants[0].match = {}; }, 'grants[0].match', /at least one of groups, clients, scopes, subjects/],
    ['empty match list', (d) => { d.grants[0].match = { groups: [] }; }, 'grants[0].match.groups', /at least one/],
    ['non-string match value', (d) => { d.grants[0].match = { groups: ['ok', 7] }; }, 'grants[0].match.groups[1]', /non-empty string, got 7/],
    ['star mixed', (d) => { d.grants[0].databases = ['*', 'app']; }, 'grants[0].databases', /must be the only entry/],
    ['grant without roles', (d) => { d.grants[0].roles = []; }, 'grants[0].roles', /at least one/],
    ['maxQueryBytes', (d) => { d.audit = { maxQueryBytes: -1 }; }, 'audit.maxQueryBytes', /0-1048576/],
    ['session duration', (d) => { d.session = { authTimeout: '1y' }; }, 'session.authTimeout', /expected a duration/],
    ['duration too long', (d) => { d.upstreams['app-pg'].pool = { maxLifetime: '30d' }; }, 'upstreams.app-pg.pool.maxLifetime', /too long/],
    // cross-checks
    ['unknown upstream', (d) => { d.grants[0].upstream = 'nope'; }, 'grants[0].upstream', /"nope" is not defined; defined upstreams: app-pg/],
    ['alias not on upstream', (d) => { d.grants[0].databases = ['payroll']; }, 'grants[0].databases', /"payroll" is not a database alias of upstream "app-pg"; its aliases: app, analytics/],
    ['role not on upstream', (d) => { d.grants[0].roles = ['admin']; }, 'grants[0].roles', /role "admin" is not defined on upstream "app-pg"; its roles: reader, writer/],
    ['duplicate grant', (d) => { d.grants.push({ ...d.grants[0] }); }, 'grants[1].name', /already used by grants\[0\]/],
    ['alias on two postgres upstreams', (d) => { d.upstreams.other = { ...d.upstreams['app-pg'], host: '10.0.0.2' }; }, 'upstreams.other.databases.app', /also defined on postgres upstream "app-pg"/],
    ['http issuer', (d) => { d.oidc.issuer = 'http://example.okta.com/oauth2/default'; }, 'oidc.issuer', /must use https/],
    ['not a URL', (d) => { d.oidc.issuer = 'example.okta.com'; }, 'oidc.issuer', /expected the issuer URL/],
    ['org authorization server', (d) => { d.oidc.issuer = 'https://example.okta.com'; }, 'oidc.issuer', /no \/oauth2\/ in its path.*org authorization server/],
    ['http jwksUri', (d) => { d.oidc.jwksUri = 'http://keys.example.com/keys'; }, 'oidc.jwksUri', /must use https/],
    ['cert without key', (d) => { d.tls = { certFile: '/x.crt' }; }, 'tls.keyFile', /must be set together/],
    ['key without cert', (d) => { d.tls = { keyFile: '/x.key' }; }, 'tls.certFile', /must be set together/],
    ['nobody can connect', (d) => { d.tls = { allowPlaintextFromLoopback: false }; }, 'tls', /no client could connect/],
    ['listener clash', (d) => { d.listen.mysql = d.listen.postgres; }, 'listen.mysql', /already used by listen.postgres/],
  ];

  test('listeners on port 0 (any free port) do not clash', () => {
    const c = parseDoc(withDoc((d) => { d.listen = { postgres: '127.0.0.1:0', mysql: '127.0.0.1:0' }; }));
    expect(c.listen).toEqual({ postgres: { host: '127.0.0.1', port: 0 }, mysql: { host: '127.0.0.1', port: 0 } });
  });

  test.each(cases)('%s', (_label, mutate, path, message) => {
    const err = configError(withDoc(mutate));
    const problem = err.problems.find((p) => p.path === path);
    expect({ paths: problemPaths(err), problem }).toEqual({ paths: expect.arrayContaining([path]), problem: expect.objectContaining({ message: expect.stringMatching(message) }) });
    expect(err.message).toContain(`${path}: `);
  });

  test('all problems are collected into one error', () => {
    const err = configError(withDoc((d) => {
      d.upstreams['app-pg'].port = 'abc';
      d.oidc.clockSkew = 'x';
      d.grants[0].upstream = 'nope';
      d.typo = 1;
    }));
    expect(problemPaths(err).sort()).toEqual(['grants[0].upstream', 'oidc.clockSkew', 'typo', 'upstreams.app-pg.port']);
    expect(err.message).toMatch(/^invalid configuration test.yaml \(4 problems\):\n  - /);
    expect(err.message).toContain('upstreams.app-pg.port: expected an integer 1-65535, got "abc"');
  });

  test('a document that is not a mapping, and YAML syntax errors, are ConfigErrors', () => {
    expect(() => parseConfig('- a\n- b\n', 'x.yaml', ENV)).toThrow(ConfigError);
    expect(() => parseConfig('a: b: c\n', 'x.yaml', ENV)).toThrow(/YAML syntax error: .*line 1/);
    expect(() => parseConfig('listen: 1\nlisten: 2\n', 'x.yaml', ENV)).toThrow(/unique/);
    expect(() => parseConfig('', 'x.yaml', ENV)).toThrow(/listen: is required/);
  });
});

describe('cross-checks that are allowed', () => {
  test('a postgres and a mysql upstream may share an alias', () => {
    const config = parseDoc(withDoc((d) => { d.upstreams.my = { ...d.upstreams['app-pg'], protocol: 'mysql' }; }));
    expect(config.upstreams.my.databases.app).toBe('app_production');
  });

  test('http issuer on loopback, and an issuer without /oauth2/ when devIssuer is on', () => {
    expect(parseDoc(withDoc((d) => { d.oidc.issuer = 'http://127.0.0.1:9099/oauth2/default'; })).oidc.issuer).toBe('http://127.0.0.1:9099/oauth2/default');
    expect(parseDoc(withDoc((d) => { d.oidc.issuer = 'http://localhost:9099'; d.oidc.devIssuer = true; })).oidc.devIssuer).toBe(true);
  });

  test('databases ["*"] is accepted', () => {
    expect(parseDoc(withDoc((d) => { d.grants[0].databases = ['*']; })).grants[0].databases).toEqual(['*']);
  });
});

describe('secrets', () => {
  test('an inline password is rejected without echoing it', () => {
    const err = configError(withDoc((d) => { d.upstreams['app-pg'].roles.reader.password = 'hunter2-inline'; }));
    expect(err.problems).toEqual([{ path: 'upstreams.app-pg.roles.reader.password', message: expect.stringMatching(/inline passwords are not accepted.*\$\{SOME_ENV_VAR\}.*passwordFile/) }]);
    expect(err.message).not.toContain('hunter2');
    const numeric = configError(withDoc((d) => { d.upstreams['app-pg'].roles.reader.password = 123456789; }));
    expect(numeric.message).not.toContain('123456789');
    const roleAsString = configError(withDoc((d) => { d.upstreams['app-pg'].roles.reader = 'hunter2-inline'; }));
    expect(roleAsString.problems).toEqual([{ path: 'upstreams.app-pg.roles.reader', message: expect.stringContaining('got a string') }]);
    expect(roleAsString.message).not.toContain('hunter2');
    const rolesAsString = configError(withDoc((d) => { d.upstreams['app-pg'].roles = 'hunter2-inline'; }));
    expect(rolesAsString.message).not.toContain('hunter2');
    const partial = configError(withDoc((d) => { d.upstreams['app-pg'].roles.reader.password = 'pre${APP_RO_PASSWORD}'; }));
    expect(partial.problems[0].path).toBe('upstreams.app-pg.roles.reader.password');
  });

  test('a YAML syntax error on a password line does not echo the line', () => {
    const text = stringify(baseDoc()).replace('password: ${APP_RO_PASSWORD}', 'password: hunter2: oops');
    expect(text).toContain('hunter2');
    expect(() => parseConfig(text, 'x.yaml', ENV)).toThrow(ConfigError);
    try { parseConfig(text, 'x.yaml', ENV); } catch (err) { expect((err as Error).message).not.toContain('hunter2'); }
  });

  test('a YAML syntax error shows the offending line with its values hidden', () => {
    const err = (text: string): string => {
      try { parseConfig(text, 'x.yaml', ENV); } catch (e) { return (e as Error).message; }
      throw new Error('accepted');
    };
    // The key is shown, so the user finds the line; the value is not.
    const tab = err('listen:\n\tpostgres: 127.0.0.1:6432\n');
    expect(tab).toContain('line 2 reads (values hidden): "\\tpostgres: ..."');
    expect(tab).not.toContain('6432');
    const flow = err('upstreams:\n  app:\n    roles:\n      reader: { user: x, password: "hunter2-flow\n');
    expect(flow).toContain('line 4 reads (values hidden): "      reader: ..."');
    expect(flow).not.toContain('hunter2');
    const bare = err('password: hunter2: oops\n');
    expect(bare).toContain('"password: ..."');
    expect(bare).not.toContain('hunter2');
    // A line that is all value (a list item, a continuation) shows nothing of it.
    expect(maskedLine('  - "s3cret: x')).toBe('  - ...');
    expect(maskedLine('  s3cret-continued')).toBe('  ...');
  });

  test('a missing or empty env var names the key and the variable', () => {
    const err = configError(baseDoc(), {});
    expect(err.problems).toContainEqual({ path: 'upstreams.app-pg.roles.reader.password', message: expect.stringContaining('environment variable APP_RO_PASSWORD is not set') });
    const empty = configError(baseDoc(), { APP_RO_PASSWORD: '' });
    expect(empty.problems[0].message).toContain('APP_RO_PASSWORD is set but empty');
  });

  test('an unreadable, empty or oversized password file names the key and the file', () => {
    const dir = tempDir();
    const missing = configError(withDoc((d) => { d.upstreams['app-pg'].roles.writer = { user: 'w', passwordFile: 'nope/pw' }; }), ENV, dir);
    expect(missing.problems).toEqual([{ path: 'upstreams.app-pg.roles.writer.passwordFile', message: expect.stringContaining(`${join(dir, 'nope/pw')} (ENOENT)`) }]);
    writeFileSync(join(dir, 'empty'), '\n');
    const empty = configError(withDoc((d) => { d.upstreams['app-pg'].roles.writer = { user: 'w', passwordFile: 'empty' }; }), ENV, dir);
    expect(empty.problems[0].message).toMatch(/is empty/);
    writeFileSync(join(dir, 'big'), 'x'.repeat(70_000));
    const big = configError(withDoc((d) => { d.upstreams['app-pg'].roles.writer = { user: 'w', passwordFile: 'big' }; }), ENV, dir);
    expect(big.problems[0].message).toMatch(/70000 bytes/);
    mkdirSync(join(dir, 'adir'));
    const notFile = configError(withDoc((d) => { d.upstreams['app-pg'].roles.writer = { user: 'w', passwordFile: 'adir' }; }), ENV, dir);
    expect(notFile.problems[0].message).toMatch(/not a regular file/);
  });

  test('resolved secrets never appear in errors, JSON or inspect output', () => {
    const dir = secretsDir();
    const config = parseDoc(withDoc((d) => { d.upstreams['app-pg'].roles.writer = { user: 'agent_rw', passwordFile: 'secrets/app_rw' }; }), ENV, dir);
    const json = JSON.stringify(config);
    const inspected = inspect(config, { depth: 10 });
    for (const secret of [RO_PASSWORD, RW_PASSWORD]) {
      expect(json).not.toContain(secret);
      expect(inspected).not.toContain(secret);
    }
    expect(json).toContain('[redacted]');
    // A config that fails for another reason still resolved its secrets; the error must not leak them.
    const err = configError(withDoc((d) => {
      d.upstreams['app-pg'].roles.writer = { user: 'agent_rw', passwordFile: 'secrets/app_rw' };
      d.upstreams['app-pg'].port = 'bad';
    }), ENV, dir);
    expect(err.message).not.toContain(RO_PASSWORD);
    expect(err.message).not.toContain(RW_PASSWORD);
    expect(JSON.stringify(err.problems)).not.toContain(RW_PASSWORD);
  });
});

describe('loading files', () => {
  test('loadConfig resolves passwordFile relative to the config file', () => {
    const dir = secretsDir();
    const file = join(dir, 'tokengate.yaml');
    writeFileSync(file, stringify(withDoc((d) => { d.upstreams['app-pg'].roles.writer = { user: 'agent_rw', passwordFile: 'secrets/app_rw' }; })));
    const config = loadConfig(file, ENV);
    expect(config.source).toBe(file);
    expect(config.upstreams['app-pg'].roles.writer.password.reveal()).toBe(RW_PASSWORD);
  });

  test('loadConfig on a missing file is a ConfigError naming it', () => {
    expect(() => loadConfig('/nonexistent/tokengate.yaml', ENV)).toThrow(/\/nonexistent\/tokengate.yaml.*cannot read the config file \(ENOENT\)/s);
  });

  test('resolveConfigPath: explicit wins, else the first default that exists, else it says where it looked', () => {
    expect(defaultConfigPaths()).toEqual(['./tokengate.yaml', '/etc/tokengate/tokengate.yaml']);
    expect(resolveConfigPath('/some/where.yaml')).toBe('/some/where.yaml');
    const cwd = process.cwd();
    const dir = tempDir();
    try {
      process.chdir(dir);
      if (!require('node:fs').existsSync('/etc/tokengate/tokengate.yaml')) {
        expect(() => resolveConfigPath()).toThrow(/looked in \.\/tokengate\.yaml, \/etc\/tokengate\/tokengate\.yaml/);
      }
      writeFileSync(join(dir, 'tokengate.yaml'), '');
      expect(resolveConfigPath()).toBe('./tokengate.yaml');
    } finally {
      process.chdir(cwd);
    }
  });
});

describe('configWarnings', () => {
  test('a well-configured gateway has no warnings', () => {
    const dir = secretsDir();
    const config = parseDoc(withDoc((d) => {
      d.tls = { certFile: '/x.crt', keyFile: '/x.key' };
      d.upstreams['app-pg'].roles.writer = { user: 'agent_rw', passwordFile: 'secrets/app_rw' };
    }), ENV, dir);
    expect(configWarnings(config)).toEqual([]);
  });

  test('dev issuer, plaintext from anywhere, missing listener, unused upstream, exposed password file', () => {
    const dir = secretsDir();
    chmodSync(join(dir, 'secrets', 'app_rw'), 0o644);
    const config = parseDoc(withDoc((d) => {
      d.oidc.devIssuer = true;
      d.tls = { allowPlaintextFromAnywhere: true };
      d.listen = { mysql: '0.0.0.0:6033' };
      d.upstreams['app-pg'].roles.writer = { user: 'agent_rw', passwordFile: 'secrets/app_rw' };
      d.upstreams.spare = { protocol: 'mysql', host: 'db.example.com', tls: 'disable', databases: { s: 's' }, roles: { r: { user: 'u', password: '${MY_PASSWORD}' } } };
    }), ENV, dir);
    const warnings = configWarnings(config).join('\n');
    expect(warnings).toMatch(/devIssuer is on/);
    expect(warnings).toMatch(/allowPlaintextFromAnywhere is on/);
    expect(warnings).toMatch(/grants give access to postgres upstreams, but there is no listen.postgres/);
    expect(warnings).toMatch(/upstream "spare" is not used by any grant/);
    expect(warnings).toMatch(/upstreams.spare.tls is disable/);
    expect(warnings).toMatch(/passwordFile .*app_rw is readable by group or others \(mode 644\)/);
    expect(warnings).not.toMatch(/no TLS certificate/); // plaintext from anywhere already covers remote clients
  });

  test('a TLS key or admin token file readable by group or others is warned about; chmod 600 silences it', () => {
    const dir = secretsDir();
    const key = join(dir, 'secrets', 'tls.key');
    const token = join(dir, 'secrets', 'admin.token');
    writeFileSync(key, 'not really a key\n', { mode: 0o640 });
    writeFileSync(token, 'admin-bearer\n', { mode: 0o604 });
    chmodSync(key, 0o640);
    chmodSync(token, 0o604);
    const config = parseDoc(withDoc((d) => {
      d.listen.admin = '127.0.0.1:9187';
      d.tls = { certFile: '/x.crt', keyFile: key };
      d.admin = { tokenFile: token };
    }), ENV, dir);
    const warnings = configWarnings(config).join('\n');
    expect(warnings).toMatch(/tls\.keyFile .*tls\.key is readable by group or others \(mode 640\); run chmod 600/);
    expect(warnings).toMatch(/admin\.tokenFile .*admin\.token is readable by group or others \(mode 604\)/);
    expect(warnings).not.toContain('admin-bearer');
    chmodSync(key, 0o600);
    chmodSync(token, 0o400);
    expect(configWarnings(config).join('\n')).not.toMatch(/readable by group or others/);
  });

  test('no certificate: remote clients cannot connect; no grants', () => {
    const config = parseDoc(withDoc((d) => { d.listen = { postgres: '0.0.0.0:6432' }; delete d.grants; }));
    const warnings = configWarnings(config).join('\n');
    expect(warnings).toMatch(/clients not on this machine cannot connect to the postgres listener/);
    expect(warnings).toMatch(/there are no grants/);
  });

  test('workers > 1 without a redis section is a problem: the workers would not share revocations, kills, cancels and caps', () => {
    expect(() => parseDoc(withDoc((d) => { d.workers = 2; }))).toThrow(/workers: 2 worker processes need shared state: add a redis: section/);
    expect(parseDoc(withDoc((d) => { d.workers = 2; d.redis = { url: 'redis://127.0.0.1:6379' }; })).workers).toBe(2);
    expect(configWarnings(parseDoc(withDoc((d) => { d.workers = 1; }))).join('\n')).not.toMatch(/workers/);
  });
});

describe('workers and listen.proxyProtocol', () => {
  test('workers: a number 1-256 or auto (one per CPU); default 1', () => {
    expect(parseDoc(baseDoc()).workers).toBe(1);
    expect(parseDoc(withDoc((d) => { d.workers = 'auto'; d.redis = { url: 'redis://127.0.0.1:6379' }; })).workers).toBe(availableParallelism());
    expect(() => parseDoc(withDoc((d) => { d.workers = 0; }))).toThrow(/workers: expected an integer 1-256 or "auto", got 0/);
    expect(() => parseDoc(withDoc((d) => { d.workers = 'many'; }))).toThrow(/workers: expected an integer 1-256 or "auto"/);
  });

  test('proxyProtocol.trusted: CIDRs and addresses, each checked', () => {
    const config = parseDoc(withDoc((d) => { d.listen.proxyProtocol = { trusted: ['10.0.0.0/8', '192.0.2.1', 'fd00::/8'] }; }));
    expect(config.listen.proxyProtocol!.trusted.map((n) => `${n.address}/${n.prefix}`)).toEqual(['10.0.0.0/8', '192.0.2.1/32', 'fd00::/8']);
    expect(() => parseDoc(withDoc((d) => { d.listen.proxyProtocol = { trusted: ['10.0.0.0/33', 'lb.example.com'] }; })))
      .toThrow(/listen.proxyProtocol.trusted\[0\]: "10.0.0.0\/33": the prefix length after "\/" must be 0-32[\s\S]*listen.proxyProtocol.trusted\[1\]: "lb.example.com" is not an IP address/);
    expect(() => parseDoc(withDoc((d) => { d.listen.proxyProtocol = { trusted: [] }; }))).toThrow(/must list at least one load balancer/);
    expect(() => parseDoc(withDoc((d) => { d.listen.proxyProtocol = {}; }))).toThrow(/listen.proxyProtocol.trusted: /);
  });
});

describe('env references in flow style and robustness', () => {
  test('${VAR} works unquoted in flow mappings and lists, quoted, and in block style', () => {
    const text = stringify(baseDoc()).replace(/reader:\n\s+user: agent_ro\n\s+password: \$\{APP_RO_PASSWORD\}/, 'reader: { user: agent_ro, password: ${APP_RO_PASSWORD} }')
      .replace(/writer:\n\s+user: agent_rw\n\s+password: \$\{APP_RO_PASSWORD\}/, 'writer: { user: agent_rw, password: "${MY_PASSWORD}" }');
    expect(text).toContain('{ user: agent_ro, password: ${APP_RO_PASSWORD} }');
    const config = parseConfig(text, 'x.yaml', ENV);
    expect(config.upstreams['app-pg'].roles.reader.password.reveal()).toBe(RO_PASSWORD);
    expect(config.upstreams['app-pg'].roles.writer.password.reveal()).toBe(MY_PASSWORD);
  });

  test('a reference inside a longer string is not expanded and is refused as an inline password', () => {
    const text = stringify(baseDoc()).replace('password: ${APP_RO_PASSWORD}', "password: 'x${APP_RO_PASSWORD}'");
    expect(() => parseConfig(text, 'x.yaml', ENV)).toThrow(/roles.reader.password: inline passwords are not accepted/);
  });

  test('YAML errors never quote the offending token', () => {
    const text = stringify(baseDoc()).replace(/reader:\n\s+user: agent_ro\n\s+password: \$\{APP_RO_PASSWORD\}/, 'reader: { user: a, password: hunter2 ] }');
    let message = '';
    try { parseConfig(text, 'x.yaml', ENV); } catch (err) { message = (err as Error).message; }
    expect(message).toMatch(/YAML syntax error/);
    expect(message).not.toContain('hunter2');
    expect(message.split('\n').length).toBeLessThanOrEqual(7);
  });

  test('arbitrary text and arbitrary documents give a Config or a ConfigError, nothing else', () => {
    const check = (text: string): boolean => {
      try {
        parseConfig(text, 'fuzz.yaml', ENV, tempDir());
        return true;
      } catch (err) {
        return err instanceof ConfigError && err.problems.length > 0;
      }
    };
    fc.assert(fc.property(fc.string({ maxLength: 300 }), check), { numRuns: 300 });
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => check(stringify(v))), { numRuns: 300 });
    // Mutations of a valid document: replace one field anywhere with a random value.
    const paths = [['listen'], ['listen', 'postgres'], ['oidc', 'audience'], ['upstreams', 'app-pg', 'roles'], ['upstreams', 'app-pg', 'databases'],
      ['grants', 0, 'match'], ['grants', 0, 'databases'], ['upstreams', 'app-pg', 'roles', 'reader'], ['tls'], ['session']];
    fc.assert(fc.property(fc.constantFrom(...paths), fc.jsonValue({ maxDepth: 2 }), (path, value) => {
      const doc = baseDoc();
      let node: any = doc;
      for (const key of path.slice(0, -1)) node = node[key];
      node[path[path.length - 1]] = value;
      return check(stringify(doc));
    }), { numRuns: 300 });
  });

  test('alias bombs are refused rather than expanded', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 12; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    expect(() => parseConfig(lines.join('\n'), 'bomb.yaml', ENV)).toThrow(ConfigError);
  });
});
