import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeConfig } from '../../src/config/describe';
import { parseConfig } from '../../src/config/load';
import { ENV, MY_PASSWORD, RO_PASSWORD, RW_PASSWORD, secretsDir } from './helpers';

describe('describeConfig (the check-config report)', () => {
  const dir = secretsDir();
  const config = parseConfig(readFileSync(join(__dirname, '../../examples/tokengate.yaml'), 'utf8'), 'examples/tokengate.yaml', ENV, dir);
  const report = describeConfig(config);

  test('shows listeners, TLS and the identity provider', () => {
    expect(report).toContain('tokengate configuration from examples/tokengate.yaml');
    expect(report).toMatch(/postgres +127\.0\.0\.1:6432/);
    expect(report).toMatch(/mysql +127\.0\.0\.1:6033/);
    expect(report).toMatch(/admin +127\.0\.0\.1:9187/);
    expect(report).toContain('client TLS: certificate /etc/tokengate/tls.crt, key /etc/tokengate/tls.key; plaintext from loopback allowed, from anywhere refused');
    expect(report).toContain('issuer:          https://example.okta.com/oauth2/default');
    expect(report).toContain('required scopes: db.connect');
    expect(report).toContain('clock skew 30s, max token lifetime 1h');
  });

  test('shows upstreams with databases and role -> user, and only the password source', () => {
    expect(report).toContain('app-pg: postgres 127.0.0.1:5432, tls disable');
    expect(report).toContain('billing-mysql: mysql db.internal.example.com:3306, tls verify-full (CA /etc/tokengate/db-ca.pem)');
    expect(report).toContain('pool: max 20 connections, idle 5m, lifetime 1h, acquire timeout 10s');
    expect(report).toContain('app -> app_production');
    expect(report).toContain('reader -> agent_ro (password from env APP_RO_PASSWORD)');
    expect(report).toContain(`writer -> agent_rw (password from file ${join(dir, 'secrets', 'app_rw')})`);
    for (const secret of [RO_PASSWORD, RW_PASSWORD, MY_PASSWORD]) expect(report).not.toContain(secret);
  });

  test('shows who may reach what for each grant', () => {
    expect(report).toContain('reporting-agents: tokens whose groups include db-readers');
    expect(report).toContain('etl-service: tokens from the client 0oa1etlservice and that carry the scope db.write');
    expect(report).toContain('databases: * = app, analytics');
    expect(report).toContain('roles:     reader (user agent_ro), writer (user agent_rw)');
    expect(report).toContain('billing-oncall: tokens whose subject is alice@example.com');
    expect(report).toContain('-> billing-mysql (mysql db.internal.example.com:3306)');
  });

  test('ends with the warnings', () => {
    expect(report).toMatch(/Warnings: none\n$/);
    const noCert = describeConfig({ ...config, tls: { ...config.tls, certFile: undefined, keyFile: undefined }, grants: [] });
    expect(noCert).toMatch(/Warnings:\n  - no TLS certificate/);
    expect(noCert).toContain('(none: every agent is refused)');
  });
});
