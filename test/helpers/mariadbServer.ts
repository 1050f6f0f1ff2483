import { ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './waitFor';

/**
 * A throwaway MariaDB server for tests: mariadb-install-db into a temp dir, mariadbd with TLS
 * on a free loopback port, running as the `mysql` user. stop() (or, failing that, the test
 * process exiting) kills it and deletes the directory.
 */

const run = promisify(execFile);

export interface MariadbServer {
  host: '127.0.0.1';
  port: number;
  /** The unix socket root uses (no password) for sql(). */
  socket: string;
  /** The CA that signed the server certificate (CN=localhost, SAN DNS:localhost only). */
  caFile: string;
  /** A different CA that did not sign the server certificate. */
  otherCaFile: string;
  /** Runs SQL as root over the unix socket; returns the batch output without column names. */
  sql(text: string): Promise<string>;
  /** Kills the server (SIGKILL, as a crash would) and keeps the data directory. */
  stopServer(): Promise<void>;
  /** Starts it again on the same port after stopServer(). */
  startServer(): Promise<void>;
  stop(): Promise<void>;
}

interface Live {
  child: ChildProcess;
  dir: string;
}
const live = new Set<Live>();
process.once('exit', () => {
  for (const l of live) killAndRemove(l);
});

function killAndRemove(l: Live): void {
  try {
    if (l.child.exitCode === null && l.child.signalCode === null && l.child.pid) process.kill(l.child.pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
  try {
    rmSync(l.dir, { recursive: true, force: true });
  } catch {
    /* best effort */
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function id(flag: '-u' | '-g'): number {
  return Number(execFileSync('id', [flag, 'mysql']).toString().trim());
}

function makeCerts(dir: string): { caFile: string; otherCaFile: string; certFile: string; keyFile: string } {
  const openssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  for (const ca of ['ca', 'other-ca']) {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-subj', `/CN=tokengate test ${ca}`]);
  }
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', 'server.crt', '-extfile', 'san.ext']);
  for (const f of ['server.key', 'server.crt', 'ca.crt']) chownSync(join(dir, f), id('-u'), id('-g'));
  chmodSync(join(dir, 'server.key'), 0o600);
  return { caFile: join(dir, 'ca.crt'), otherCaFile: join(dir, 'other-ca.crt'), certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') };
}

export async function startMariadbServer(): Promise<MariadbServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tg-mariadb-'));
  chownSync(dir, id('-u'), id('-g'));
  const data = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const errLog = join(dir, 'error.log');
  const certs = makeCerts(dir);
  const fail = (why: string): Error => {
    const tail = existsSync(errLog) ? readFileSync(errLog, 'utf8').slice(-2000) : '';
    return new Error(`Could not start a test MariaDB server: ${why}\n${tail}`);
  };
  try {
    // Its mariadbd runs as mysql: temp files go in our directory, not in a $TMPDIR that user may not write.
    await run('mariadb-install-db', ['--no-defaults', `--datadir=${data}`, '--user=mysql', '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve', `--tmpdir=${dir}`]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw fail(`mariadb-install-db: ${(err as Error).message}`);
  }
  const sql = async (text: string): Promise<string> => {
    const { stdout } = await run('mariadb', ['--no-defaults', '-uroot', `--socket=${socket}`, '-N', '-B', '-e', text]);
    return stdout.trim();
  };

  const spawnOn = (port: number): ChildProcess => spawn('mariadbd', [
    '--no-defaults', `--datadir=${data}`, `--socket=${socket}`, `--port=${port}`, '--bind-address=127.0.0.1', '--user=mysql',
    `--pid-file=${join(dir, 'mysqld.pid')}`, `--log-error=${errLog}`, `--tmpdir=${dir}`, '--skip-name-resolve',
    `--ssl-cert=${certs.certFile}`, `--ssl-key=${certs.keyFile}`, `--ssl-ca=${certs.caFile}`,
    '--innodb-buffer-pool-size=16M', '--max-connections=60', '--performance-schema=ON',
  ], { stdio: 'ignore' });
  const accepting = (child: ChildProcess): Promise<boolean> => waitFor(async () => child.exitCode !== null || (await sql('SELECT 1').then(() => true, () => false)), {
    what: 'mariadbd to accept connections', timeoutMs: 30_000, intervalMs: 200,
  }).then(() => child.exitCode === null, () => false);
  const kill = async (child: ChildProcess): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGKILL');
      await exited;
    }
  };

  // Another process may take the free port before mariadbd binds it: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const entry: Live = { child: spawnOn(port), dir };
    live.add(entry);
    const up = await accepting(entry.child);
    if (entry.child.exitCode !== null) {
      live.delete(entry);
      if (existsSync(errLog) && readFileSync(errLog, 'utf8').includes('Address already in use')) continue;
      rmSync(dir, { recursive: true, force: true });
      throw fail(`mariadbd exited with code ${entry.child.exitCode}`);
    }
    if (!up) {
      live.delete(entry);
      killAndRemove(entry);
      throw fail('it did not accept connections within 30 s');
    }
    let stopped = false;
    return {
      host: '127.0.0.1',
      port,
      socket,
      caFile: certs.caFile,
      otherCaFile: certs.otherCaFile,
      sql,
      async stopServer() {
        await kill(entry.child);
      },
      async startServer() {
        entry.child = spawnOn(port);
        if (!(await accepting(entry.child))) throw fail('it did not come back on its port within 30 s');
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        // The data is thrown away, so no graceful shutdown: SIGKILL, and wait for the exit.
        await kill(entry.child);
        live.delete(entry);
        killAndRemove(entry);
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw fail('no free port could be bound after 3 attempts');
}
