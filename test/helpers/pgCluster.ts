import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A throwaway PostgreSQL 15 cluster for tests: initdb into a temp dir, start on a free port,
 * create the tg_* roles (one per authentication method) and database `app`, stop and delete
 * on stop() or, failing that, when the test process exits.
 */

const BIN = '/usr/lib/postgresql/15/bin';
const run = promisify(execFile);

export interface PgCluster {
  host: '127.0.0.1';
  port: number;
  socketDir: string;
  superuserPassword: string;
  /** Passwords of tg_scram (scram-sha-256), tg_md5 (md5), tg_plain (password), tg_trust (trust). */
  passwords: { tg_scram: string; tg_md5: string; tg_plain: string; tg_trust: string };
  /** With ssl: the CA that signed the server cert (CN=localhost, SAN DNS:localhost only). */
  caFile?: string;
  /** With ssl: a different CA that did not sign the server certificate. */
  otherCaFile?: string;
  /** Runs SQL as the superuser over the unix socket; returns psql's unaligned, tuples-only output. */
  psql(sql: string, database?: string): Promise<string>;
  /** Stops the server (immediate shutdown, as a crash would) and keeps the data directory. */
  stopServer(): Promise<void>;
  /** Starts it again on the same port after stopServer(). */
  startServer(): Promise<void>;
  stop(): Promise<void>;
}

const live = new Set<{ pidFile: string; dir: string }>();
process.once('exit', () => {
  for (const c of live) killAndRemove(c.pidFile, c.dir);
});

function killAndRemove(pidFile: string, dir: string): void {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    // A stale pid file may name a PID reused by another process: signal only our own postmaster.
    if (pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(pid, 'SIGQUIT');
  } catch {
    /* not running */
  }
  try {
    rmSync(dir, { recursive: true, force: true });
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

function asPostgres(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('runuser', ['-u', 'postgres', '--', ...args], { maxBuffer: 16 * 1024 * 1024 });
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

function makeCerts(dir: string): { caFile: string; otherCaFile: string } {
  const subj = (cn: string): string[] => ['-subj', `/CN=${cn}`];
  for (const ca of ['ca', 'other-ca']) {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, ...subj(`tokengate test ${ca}`)], dir);
  }
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', ...subj('localhost')], dir);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', 'server.crt', '-extfile', 'san.ext'], dir);
  for (const f of ['server.key', 'server.crt']) chownSync(join(dir, f), uid('postgres'), gid('postgres'));
  chmodSync(join(dir, 'server.key'), 0o600);
  return { caFile: join(dir, 'ca.crt'), otherCaFile: join(dir, 'other-ca.crt') };
}

function uid(user: string): number {
  return Number(execFileSync('id', ['-u', user]).toString().trim());
}
function gid(user: string): number {
  return Number(execFileSync('id', ['-g', user]).toString().trim());
}

export async function startPgCluster(opts: { ssl?: boolean } = {}): Promise<PgCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'tg-pg-'));
  const data = join(dir, 'data');
  const pidFile = join(data, 'postmaster.pid');
  const entry = { pidFile, dir };
  live.add(entry);
  try {
    chownSync(dir, uid('postgres'), gid('postgres'));
    const superuserPassword = `su-${Math.random().toString(36).slice(2)}`;
    const passwords = { tg_scram: 'scram-pw-1', tg_md5: 'md5-pw-2', tg_plain: 'plain-pw-3', tg_trust: 'trust-pw-4' };
    const pwFile = join(dir, 'pwfile');
    writeFileSync(pwFile, `${superuserPassword}\n`);
    chownSync(pwFile, uid('postgres'), gid('postgres'));
    await asPostgres([`${BIN}/initdb`, '-D', data, '-U', 'postgres', '--pwfile', pwFile, '--auth-host=scram-sha-256', '--auth-local=trust', '-E', 'UTF8', '--locale=C.UTF-8']);
    const port = await freePort();
    const conf = [
      `listen_addresses = '127.0.0.1'`,
      `port = ${port}`,
      `unix_socket_directories = '${dir}'`,
      `password_encryption = 'scram-sha-256'`,
      `fsync = off`,
      `synchronous_commit = off`,
      `full_page_writes = off`,
      `max_connections = 60`,
      `shared_buffers = '16MB'`,
    ];
    let certs: { caFile: string; otherCaFile: string } | undefined;
    if (opts.ssl) {
      certs = makeCerts(dir);
      conf.push(`ssl = on`, `ssl_cert_file = '${join(dir, 'server.crt')}'`, `ssl_key_file = '${join(dir, 'server.key')}'`);
    }
    appendFileSync(join(data, 'postgresql.conf'), `\n${conf.join('\n')}\n`);
    writeFileSync(
      join(data, 'pg_hba.conf'),
      [
        'local all all trust',
        'host all tg_trust 127.0.0.1/32 trust',
        'host all tg_md5 127.0.0.1/32 md5',
        'host all tg_plain 127.0.0.1/32 password',
        'host all all 127.0.0.1/32 scram-sha-256',
        '',
      ].join('\n'),
    );
    await asPostgres([`${BIN}/pg_ctl`, '-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '30', 'start']);

    const psql = async (sql: string, database = 'postgres'): Promise<string> => {
      const { stdout } = await run('psql', ['-h', dir, '-p', String(port), '-U', 'postgres', '-d', database, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
      return stdout.trim();
    };
    await psql(`
      CREATE ROLE tg_scram LOGIN PASSWORD '${passwords.tg_scram}';
      CREATE ROLE tg_plain LOGIN PASSWORD '${passwords.tg_plain}';
      CREATE ROLE tg_trust LOGIN PASSWORD '${passwords.tg_trust}';
      SET password_encryption = 'md5';
      CREATE ROLE tg_md5 LOGIN PASSWORD '${passwords.tg_md5}';`);
    await psql('CREATE DATABASE app');
    await psql(`
      GRANT ALL ON DATABASE app TO tg_scram, tg_md5, tg_plain, tg_trust;`);
    await psql('GRANT ALL ON SCHEMA public TO PUBLIC', 'app');

    let stopped = false;
    return {
      host: '127.0.0.1',
      port,
      socketDir: dir,
      superuserPassword,
      passwords,
      caFile: certs?.caFile,
      otherCaFile: certs?.otherCaFile,
      psql,
      async stopServer() {
        await asPostgres([`${BIN}/pg_ctl`, '-D', data, '-m', 'immediate', '-w', 'stop']);
      },
      async startServer() {
        await asPostgres([`${BIN}/pg_ctl`, '-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '30', 'start']);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        try {
          if (existsSync(pidFile)) await asPostgres([`${BIN}/pg_ctl`, '-D', data, '-m', 'immediate', '-w', 'stop']);
        } finally {
          live.delete(entry);
          killAndRemove(pidFile, dir);
        }
      },
    };
  } catch (err) {
    live.delete(entry);
    killAndRemove(pidFile, dir);
    const log = join(dir, 'server.log');
    const tail = existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : '';
    throw new Error(`Could not start a test PostgreSQL cluster: ${(err as Error).message}\n${tail}`);
  }
}
