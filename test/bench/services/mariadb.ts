import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { freePort, giveTo, logTail, runOk, startDaemon, waitForPort, type Daemon } from '../proc';

export interface BenchMariadb {
  host: '127.0.0.1';
  port: number;
  /** A mysql_native_password user for direct runs and as tokengate's upstream role. */
  user: string;
  password: string;
  database: string;
  tableSize: number;
  daemon: Daemon;
  stop(): Promise<void>;
}

export interface MariadbOptions {
  dir: string;
  tableSize: number;
  log: (line: string) => void;
}

/**
 * A throwaway MariaDB server (mariadb-install-db + mariadbd) on a free loopback port, with a
 * password user and the sysbench table sbtest1. Durability is relaxed for the same reason as
 * the PostgreSQL cluster: the benchmark measures the path, not the disk.
 */
export async function startBenchMariadb(o: MariadbOptions): Promise<BenchMariadb> {
  mkdirSync(o.dir, { recursive: true });
  giveTo('mysql', o.dir);
  const data = path.join(o.dir, 'data');
  const socket = path.join(o.dir, 'mysqld.sock');
  // The server and its installer run as mysql: their temporary files go to its own directory, not the caller's TMPDIR.
  const asMysql = { TMPDIR: o.dir };
  await runOk('mariadb-install-db', ['--no-defaults', `--datadir=${data}`, '--user=mysql', '--auth-root-authentication-method=socket', '--skip-test-db'], { env: asMysql });
  const port = await freePort();
  const logFile = path.join(o.dir, 'server.log');
  const daemon = startDaemon('mariadbd', 'mariadbd', [
    '--no-defaults', `--datadir=${data}`, '--user=mysql', `--port=${port}`, '--bind-address=127.0.0.1', `--socket=${socket}`,
    `--pid-file=${path.join(o.dir, 'mysqld.pid')}`, '--skip-log-bin', '--innodb-buffer-pool-size=256M',
    '--innodb-flush-log-at-trx-commit=0', '--max-connections=500', '--thread-cache-size=200', '--skip-name-resolve', `--tmpdir=${o.dir}`,
  ], logFile, { env: asMysql });
  const stop = () => daemon.stop('SIGTERM', 30_000);
  try {
    await waitForPort(port, { daemon, timeoutMs: 60_000 });
    const user = 'bench';
    const password = `bench-${Math.random().toString(36).slice(2)}`;
    const database = 'sbtest';
    await runOk('mariadb', ['--no-defaults', '-S', socket, '-u', 'root', '-e',
      `CREATE USER ${user}@'127.0.0.1' IDENTIFIED BY '${password}'; CREATE DATABASE ${database}; GRANT ALL ON ${database}.* TO ${user}@'127.0.0.1';`]);
    o.log(`sysbench oltp_point_select prepare (${o.tableSize} rows)`);
    await runOk('sysbench', ['oltp_point_select', '--db-driver=mysql', '--mysql-host=127.0.0.1', `--mysql-port=${port}`, `--mysql-user=${user}`,
      `--mysql-password=${password}`, `--mysql-db=${database}`, '--tables=1', `--table-size=${o.tableSize}`, 'prepare']);
    return { host: '127.0.0.1', port, user, password, database, tableSize: o.tableSize, daemon, stop };
  } catch (err) {
    await stop();
    throw new Error(`MariaDB setup failed: ${(err as Error).message}\n${logTail(logFile)}`);
  }
}
