import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, giveTo, logTail, runOk } from '../proc';
import type { BenchCert } from './tlsCert';

export interface BenchPostgres {
  host: '127.0.0.1';
  port: number;
  /** The SCRAM-SHA-256 login role the benchmarks use (direct, via pgbouncer, and as tokengate's upstream role). */
  user: string;
  password: string;
  database: string;
  /** The role's `SCRAM-SHA-256$...` verifier from pg_authid (what pgbouncer's auth_file should hold). */
  scramSecret: string;
  /** Runs SQL as the superuser over the unix socket. */
  psql(sql: string, database?: string): Promise<string>;
  stop(): Promise<void>;
}

export interface PostgresOptions {
  bin: string;
  dir: string;
  cert: BenchCert;
  pgbenchScale: number;
  log: (line: string) => void;
}

/**
 * A throwaway PostgreSQL cluster tuned to measure the path to it, not its disk: fsync,
 * synchronous_commit and full_page_writes off. TCP logins require SCRAM-SHA-256 (TLS allowed);
 * the unix socket trusts the superuser for setup. The database holds `pgbench -i -s SCALE` tables.
 */
export async function startBenchPostgres(o: PostgresOptions): Promise<BenchPostgres> {
  const data = path.join(o.dir, 'data');
  mkdirSync(o.dir, { recursive: true });
  giveTo('postgres', o.dir);
  const asPostgres = (args: string[]) => runOk('runuser', ['-u', 'postgres', '--', ...args], { cwd: o.dir });
  await asPostgres([`${o.bin}/initdb`, '-D', data, '-U', 'postgres', '--auth-host=scram-sha-256', '--auth-local=trust', '-E', 'UTF8', '--locale=C.UTF-8']);
  const port = await freePort();
  appendFileSync(path.join(data, 'postgresql.conf'), `
listen_addresses = '127.0.0.1'
port = ${port}
unix_socket_directories = '${o.dir}'
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = '256MB'
ssl = on
ssl_cert_file = '${o.cert.certFile}'
ssl_key_file = '${o.cert.keyFile}'
`);
  writeFileSync(path.join(data, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n');
  const logFile = path.join(o.dir, 'server.log');
  try {
    await asPostgres([`${o.bin}/pg_ctl`, '-D', data, '-l', logFile, '-w', '-t', '60', 'start']);
  } catch (err) {
    throw new Error(`PostgreSQL did not start: ${(err as Error).message}\n${logTail(logFile)}`);
  }
  const psql = async (sql: string, database = 'postgres'): Promise<string> => {
    const r = await runOk('psql', ['-h', o.dir, '-p', String(port), '-U', 'postgres', '-d', database, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
    return r.stdout.trim();
  };
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (existsSync(path.join(data, 'postmaster.pid'))) await asPostgres([`${o.bin}/pg_ctl`, '-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
  };
  try {
    const user = 'bench';
    const password = `bench-${Math.random().toString(36).slice(2)}`;
    const database = 'bench';
    await psql(`CREATE ROLE ${user} LOGIN PASSWORD '${password}'`);
    await psql(`CREATE DATABASE ${database} OWNER ${user}`);
    const scramSecret = await psql(`SELECT rolpassword FROM pg_authid WHERE rolname = '${user}'`);
    if (!scramSecret.startsWith('SCRAM-SHA-256$')) throw new Error(`expected a SCRAM verifier for ${user}, got ${scramSecret.slice(0, 14)}…`);
    o.log(`pgbench -i -s ${o.pgbenchScale} (a few seconds)`);
    await runOk('pgbench', ['-i', '-q', '-s', String(o.pgbenchScale), '-h', o.dir, '-p', String(port), '-U', user, database]);
    await psql('VACUUM ANALYZE', database);
    return { host: '127.0.0.1', port, user, password, database, scramSecret, psql, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
