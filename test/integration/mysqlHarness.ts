import crypto from 'node:crypto';
import mysql from 'mysql2/promise';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import { parseConfig } from '../../src/config/load';
import { startGateway, type Gateway } from '../../src/core/gateway';
import { MemoryTransport } from '../helpers/memoryTransport';
import { run, type RunResult } from './harness';

/**
 * The MySQL side end to end: throwaway databases and least-privilege users on the local
 * MariaDB (127.0.0.1:3306, root without password), the dev OIDC issuer over HTTP, and the
 * gateway wired to both through a YAML config. Every suite gets its own names (a random
 * suffix) so suites can run side by side, and drops them in stop().
 */

export const MARIADB = { host: '127.0.0.1', port: 3306, user: 'root' };
export const AUDIENCE = 'api://tokengate';

/** Demo clients of the dev issuer, shaped like Okta service apps. */
export const CLIENTS = [
  { clientId: 'svc-reporting', clientSecret: 'reporting-dev-secret', groups: ['db-readers'], scopes: ['db.connect'] },
  { clientId: '0oa1svcbilling', clientSecret: 'billing-dev-secret', groups: [], scopes: ['db.connect', 'db.write'] },
  { clientId: 'svc-nobody', clientSecret: 'nobody-dev-secret', groups: ['marketing'], scopes: ['db.connect'] },
];

export interface MysqlNames {
  app: string;
  analytics: string;
  /** A database that exists upstream but is not mapped to any alias. */
  hidden: string;
  ro: string;
  rw: string;
}

export interface MysqlHarness {
  names: MysqlNames;
  issuer: DevIssuer;
  gateway: Gateway;
  audit: MemoryTransport;
  port: number;
  /** Every string that must never appear in a log, an audit line or an error. */
  secrets: string[];
  token(clientId?: string, o?: Parameters<DevIssuer['mintToken']>[0]): Promise<string>;
  /** Runs SQL on the upstream as root (setup and checks). */
  admin(sql: string, values?: unknown[]): Promise<unknown[]>;
  stop(): Promise<void>;
}

export interface MysqlHarnessOptions {
  pool?: string;
  tls?: { certFile: string; keyFile: string };
  allowPlaintextFromLoopback?: boolean;
  expiryGrace?: string;
}

export async function startMysqlHarness(o: MysqlHarnessOptions = {}): Promise<MysqlHarness> {
  const sfx = crypto.randomBytes(4).toString('hex');
  const names: MysqlNames = { app: `tg_app_${sfx}`, analytics: `tg_analytics_${sfx}`, hidden: `tg_hidden_${sfx}`, ro: `tg_agent_ro_${sfx}`, rw: `tg_agent_rw_${sfx}` };
  const roPassword = `ro-${crypto.randomBytes(12).toString('hex')}`;
  const rwPassword = `rw-${crypto.randomBytes(12).toString('hex')}`;
  const root = await mysql.createConnection({ ...MARIADB, multipleStatements: true });
  const admin = async (sql: string, values?: unknown[]): Promise<unknown[]> => {
    const [rows] = await root.query(sql, values);
    return rows as unknown[];
  };
  try {
    for (const db of [names.app, names.analytics, names.hidden]) await admin(`CREATE DATABASE \`${db}\` CHARACTER SET utf8mb4`);
    for (const host of ['%', 'localhost']) {
      await admin(`CREATE USER '${names.ro}'@'${host}' IDENTIFIED VIA mysql_native_password USING PASSWORD(?)`, [roPassword]);
      await admin(`CREATE USER '${names.rw}'@'${host}' IDENTIFIED VIA mysql_native_password USING PASSWORD(?)`, [rwPassword]);
      for (const db of [names.app, names.analytics]) {
        await admin(`GRANT SELECT, CREATE TEMPORARY TABLES ON \`${db}\`.* TO '${names.ro}'@'${host}'`);
      }
      await admin(`GRANT ALL ON \`${names.app}\`.* TO '${names.rw}'@'${host}'`);
      // Both users may read the unmapped database: only the gateway's USE check keeps agents out.
      await admin(`GRANT SELECT ON \`${names.hidden}\`.* TO '${names.ro}'@'${host}', '${names.rw}'@'${host}'`);
    }
    await admin(`CREATE TABLE \`${names.app}\`.items (id INT PRIMARY KEY, name VARCHAR(50)) CHARACTER SET utf8mb4`);
    await admin(`INSERT INTO \`${names.app}\`.items VALUES ${Array.from({ length: 10 }, (_, i) => `(${i + 1}, 'item ${i + 1}')`).join(', ')}`);
    await admin(`CREATE TABLE \`${names.analytics}\`.metrics (name VARCHAR(20) PRIMARY KEY, value INT)`);
    await admin(`INSERT INTO \`${names.analytics}\`.metrics VALUES ('visits', 42)`);
  } catch (err) {
    await dropAll(admin, names).catch(() => undefined);
    await root.end();
    throw err;
  }

  const issuer = await startDevIssuer({ audience: AUDIENCE, clients: CLIENTS });
  const tls = o.tls ? `\n  certFile: ${o.tls.certFile}\n  keyFile: ${o.tls.keyFile}` : '';
  const yaml = `
listen:
  mysql: 127.0.0.1:0
tls:
  allowPlaintextFromLoopback: ${o.allowPlaintextFromLoopback ?? true}${tls}
oidc:
  issuer: ${issuer.issuer}
  audience: ${AUDIENCE}
  algorithms: [RS256]
  clockSkew: 5s
  maxTokenLifetime: 1h
  requiredScopes: [db.connect]
  groupsClaim: groups
  devIssuer: true
upstreams:
  app-my:
    protocol: mysql
    host: ${MARIADB.host}
    port: ${MARIADB.port}
    tls: disable
    pool: ${o.pool ?? '{ maxConnections: 4, idleTimeout: 5m, maxLifetime: 1h, acquireTimeout: 3s }'}
    databases: { app: ${names.app}, analytics: ${names.analytics} }
    roles:
      reader: { user: ${names.ro}, password: \${MY_RO_PASSWORD} }
      writer: { user: ${names.rw}, password: \${MY_RW_PASSWORD} }
grants:
  - name: reporting-agents
    match: { groups: [db-readers] }
    upstream: app-my
    databases: [app, analytics]
    roles: [reader]
  - name: billing-writer
    match: { clients: [0oa1svcbilling], scopes: [db.write] }
    upstream: app-my
    databases: [app]
    roles: [writer, reader]
audit:
  file: stdout
  queries: true
  maxQueryBytes: 200
session:
  authTimeout: 5s
  expiryGrace: ${o.expiryGrace ?? '0s'}
`;
  const config = parseConfig(yaml, '<test>', { MY_RO_PASSWORD: roPassword, MY_RW_PASSWORD: rwPassword });
  const audit = new MemoryTransport();
  const gateway = await startGateway(config, { auditTransport: audit });
  const minted: string[] = [];
  return {
    names,
    issuer,
    gateway,
    audit,
    port: gateway.mysql!.port,
    get secrets() {
      return [roPassword, rwPassword, ...CLIENTS.map((c) => c.clientSecret), ...minted, ...minted.map((t) => t.split('.')[2])];
    },
    async token(clientId = 'svc-reporting', mo = {}) {
      const t = await issuer.mintToken({ clientId, ...mo });
      minted.push(t);
      return t;
    },
    admin,
    async stop() {
      await gateway.close();
      await issuer.stop();
      await dropAll(admin, names).catch(() => undefined);
      await root.end();
    },
  };
}

async function dropAll(admin: (sql: string) => Promise<unknown[]>, names: MysqlNames): Promise<void> {
  for (const user of [names.ro, names.rw]) {
    for (const host of ['%', 'localhost']) await admin(`DROP USER IF EXISTS '${user}'@'${host}'`);
  }
  for (const db of [names.app, names.analytics, names.hidden]) await admin(`DROP DATABASE IF EXISTS \`${db}\``);
}

/** mysql2 through the gateway with the token as the password (mysql_clear_password enabled). */
export function connectMysql2(h: MysqlHarness, token: string, o: Partial<mysql.ConnectionOptions> = {}): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: '127.0.0.1', port: h.port, user: 'reader', database: 'app', password: token,
    enableCleartextPlugin: true, connectTimeout: 10000, ...o,
  });
}

/** The stock mariadb CLI through the gateway, the token in MYSQL_PWD. */
export function mariadbCli(h: MysqlHarness, token: string, sql: string, o: { user?: string; db?: string | null; extra?: string[] } = {}): Promise<RunResult> {
  const db = o.db === undefined ? 'app' : o.db;
  return run('mariadb', [
    '--no-defaults', '-h127.0.0.1', `-P${h.port}`, `-u${o.user ?? 'reader'}`, ...(db ? [`-D${db}`] : []),
    '--batch', '--skip-column-names', ...(o.extra ?? ['--skip-ssl']), '-e', sql,
  ], { MYSQL_PWD: token });
}

/** Rows of the upstream's process list for one of the harness users. */
export async function upstreamThreads(h: MysqlHarness, user: string): Promise<{ ID: number; DB: string | null; COMMAND: string; INFO: string | null }[]> {
  return (await h.admin('SELECT ID, DB, COMMAND, INFO FROM information_schema.PROCESSLIST WHERE USER = ?', [user])) as never;
}
