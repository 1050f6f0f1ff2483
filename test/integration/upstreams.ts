/**
 * The upstream side of a gateway harness, one provisioner per protocol: a database server with
 * the databases `app` and `analytics` (app has a table `items` with ids 1..10), a read-only and
 * a read-write user with passwords only the gateway knows, and a way to run admin SQL.
 */
import crypto from 'node:crypto';
import mysql from 'mysql2/promise';
import { startPgCluster, type PgCluster } from '../helpers/pgCluster';

/** The real names behind the gateway's aliases and roles. */
export interface UpstreamNames {
  app: string;
  analytics: string;
  /** The upstream user of role reader. */
  ro: string;
  /** The upstream user of role writer. */
  rw: string;
}

export interface MysqlNames extends UpstreamNames {
  /** A database that exists upstream but is not mapped to any alias. */
  hidden: string;
}

interface ProvisionedBase {
  host: string;
  port: number;
  /** Passwords the gateway holds for the upstream users; tests prove they never leak. */
  passwords: { ro: string; rw: string };
  /** Drops what was created (or the whole server). */
  stop(): Promise<void>;
}

export interface ProvisionedPostgres extends ProvisionedBase {
  protocol: 'postgres';
  names: UpstreamNames;
  /** A throwaway PostgreSQL that requires SCRAM; cluster.psql runs SQL as the superuser. */
  cluster: PgCluster;
}

export interface ProvisionedMysql extends ProvisionedBase {
  protocol: 'mysql';
  names: MysqlNames;
  /** Runs SQL on the upstream as root (setup and checks). */
  admin(sql: string, values?: unknown[]): Promise<unknown[]>;
}

const password = (prefix: string): string => `${prefix}-${crypto.randomBytes(12).toString('hex')}`;

/** A throwaway PostgreSQL cluster (its own port and data directory), removed by stop(). */
export async function provisionPostgres(): Promise<ProvisionedPostgres> {
  const names: UpstreamNames = { app: 'app', analytics: 'analytics', ro: 'agent_ro', rw: 'agent_rw' };
  const passwords = { ro: password('ro'), rw: password('rw') };
  const cluster = await startPgCluster();
  try {
    await cluster.psql(`
      CREATE ROLE ${names.ro} LOGIN PASSWORD '${passwords.ro}';
      CREATE ROLE ${names.rw} LOGIN PASSWORD '${passwords.rw}';
      GRANT ALL ON DATABASE ${names.app} TO ${names.ro}, ${names.rw};
    `);
    await cluster.psql(`CREATE DATABASE ${names.analytics}`);
    await cluster.psql(`
      CREATE TABLE items (id int primary key, name text);
      INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g;
      GRANT SELECT ON items TO ${names.ro};
      GRANT ALL ON items TO ${names.rw};
      GRANT CREATE ON SCHEMA public TO ${names.rw};
    `, names.app);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return { protocol: 'postgres', host: cluster.host, port: cluster.port, names, passwords, cluster, stop: () => cluster.stop() };
}

/** The machine's MariaDB (127.0.0.1:3306, root without password). */
const MARIADB = { host: '127.0.0.1', port: 3306, user: 'root' };

/**
 * Databases and users with a random suffix on the machine's MariaDB, so suites can run side by
 * side; stop() drops them.
 */
export async function provisionMysql(): Promise<ProvisionedMysql> {
  const sfx = crypto.randomBytes(4).toString('hex');
  const names: MysqlNames = { app: `tg_app_${sfx}`, analytics: `tg_analytics_${sfx}`, hidden: `tg_hidden_${sfx}`, ro: `tg_agent_ro_${sfx}`, rw: `tg_agent_rw_${sfx}` };
  const passwords = { ro: password('ro'), rw: password('rw') };
  const root = await mysql.createConnection({ ...MARIADB, multipleStatements: true });
  const admin = async (sql: string, values?: unknown[]): Promise<unknown[]> => {
    const [rows] = await root.query(sql, values);
    return rows as unknown[];
  };
  const stop = async (): Promise<void> => {
    await dropAll(admin, names).catch(() => undefined);
    await root.end();
  };
  try {
    for (const db of [names.app, names.analytics, names.hidden]) await admin(`CREATE DATABASE \`${db}\` CHARACTER SET utf8mb4`);
    for (const host of ['%', 'localhost']) {
      await admin(`CREATE USER '${names.ro}'@'${host}' IDENTIFIED VIA mysql_native_password USING PASSWORD(?)`, [passwords.ro]);
      await admin(`CREATE USER '${names.rw}'@'${host}' IDENTIFIED VIA mysql_native_password USING PASSWORD(?)`, [passwords.rw]);
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
    await stop();
    throw err;
  }
  return { protocol: 'mysql', host: MARIADB.host, port: MARIADB.port, names, passwords, admin, stop };
}

async function dropAll(admin: (sql: string) => Promise<unknown[]>, names: MysqlNames): Promise<void> {
  for (const user of [names.ro, names.rw]) {
    for (const host of ['%', 'localhost']) await admin(`DROP USER IF EXISTS '${user}'@'${host}'`);
  }
  for (const db of [names.app, names.analytics, names.hidden]) await admin(`DROP DATABASE IF EXISTS \`${db}\``);
}
