/**
 * Scenario 7: how long a client waits from opening the TCP connection until the session is
 * usable (PostgreSQL ReadyForQuery, MySQL handshake OK). Connections are opened one after
 * another, so each figure is one login's latency, not a throughput.
 */
import { performance } from 'node:perf_hooks';
import { Client } from 'pg';
import mysql from 'mysql2';
import type { MysqlTarget, PgTarget } from './workloads';

async function timePg(t: PgTarget): Promise<number> {
  const client = new Client({
    host: t.host, port: t.port, user: t.user, database: t.database, password: t.password,
    ssl: t.sslmode === 'require' ? { rejectUnauthorized: false } : false,
    connectionTimeoutMillis: 30_000,
  });
  const start = performance.now();
  await client.connect(); // resolves on ReadyForQuery
  const ms = performance.now() - start;
  await client.end();
  return ms;
}

function timeMysql(t: MysqlTarget): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const conn = mysql.createConnection({
      host: t.host, port: t.port, user: t.user, password: t.password, database: t.database,
      enableCleartextPlugin: true, connectTimeout: 30_000,
    });
    conn.connect((err) => {
      const ms = performance.now() - start;
      if (err) {
        conn.destroy();
        reject(new Error(`MySQL login to ${t.host}:${t.port} failed: ${err.message}`));
        return;
      }
      conn.end(() => resolve(ms));
    });
  });
}

/** `count` sequential logins; returns each one's milliseconds. */
export async function connectTimes(target: { pg: PgTarget } | { mysql: MysqlTarget }, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push('pg' in target ? await timePg(target.pg) : await timeMysql(target.mysql));
  return out;
}
