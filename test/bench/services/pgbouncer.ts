import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { freePort, giveTo, startDaemon, waitForPort, type Daemon, type Wrapper } from '../proc';
import type { BenchPostgres } from './postgres';
import type { BenchCert } from './tlsCert';

export type PgbouncerAuth = 'scram-sha-256' | 'plain';

export interface PgbouncerOptions {
  name: string;
  dir: string;
  upstream: BenchPostgres;
  auth: PgbouncerAuth;
  /** With a cert: client_tls_sslmode=require (every client must use TLS). */
  tls?: BenchCert;
  poolSize: number;
  /** Run under this command prefix (INSTRUCTIONS=1: valgrind). */
  wrapper?: Wrapper;
}

export interface BenchPgbouncer {
  name: string;
  port: number;
  pid: number;
  daemon: Daemon;
  stop(): Promise<void>;
}

/**
 * One pgbouncer in session mode, listening on loopback TCP only. For SCRAM the auth_file
 * holds the role's SCRAM verifier (pgbouncer's recommended setup: no PBKDF2 per login, and
 * the client's proof is reused for the server login); for `plain` it holds the password, so a
 * login is a string comparison, the like-for-like cost of checking a cached token.
 * Upstream connections are plaintext, like tokengate's in this benchmark.
 */
export async function startPgbouncer(o: PgbouncerOptions): Promise<BenchPgbouncer> {
  mkdirSync(o.dir, { recursive: true });
  const port = await freePort();
  const pg = o.upstream;
  const authFile = path.join(o.dir, 'userlist.txt');
  const secret = o.auth === 'plain' ? pg.password : pg.scramSecret;
  writeFileSync(authFile, `"${pg.user}" "${secret}"\n`, { mode: 0o600 });
  const ini = path.join(o.dir, 'pgbouncer.ini');
  const tls = o.tls
    ? `client_tls_sslmode = require\nclient_tls_cert_file = ${o.tls.certFile}\nclient_tls_key_file = ${o.tls.keyFile}\n`
    : 'client_tls_sslmode = disable\n';
  writeFileSync(ini, `[databases]
${pg.database} = host=${pg.host} port=${pg.port} dbname=${pg.database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
pidfile = ${path.join(o.dir, 'pgbouncer.pid')}
auth_type = ${o.auth}
auth_file = ${authFile}
pool_mode = session
max_client_conn = 500
default_pool_size = ${o.poolSize}
server_tls_sslmode = disable
${tls}ignore_startup_parameters = extra_float_digits
`);
  giveTo('postgres', o.dir, authFile, ini);
  // pgbouncer refuses to run as root; -u drops to postgres after binding (the PID stays the same).
  // Under a wrapper (valgrind) the process is postgres's from the start instead: callgrind_control
  // cannot reach a valgrind that started as root and dropped it.
  const wrapper = o.wrapper && { ...o.wrapper, command: ['setpriv', '--reuid=postgres', '--regid=postgres', '--clear-groups', ...o.wrapper.command] };
  const daemon = startDaemon(o.name, 'pgbouncer', wrapper ? [ini] : ['-u', 'postgres', ini], path.join(o.dir, 'pgbouncer.log'), { wrapper });
  await waitForPort(port, { daemon, timeoutMs: o.wrapper?.startTimeoutMs });
  return { name: o.name, port, pid: daemon.child.pid!, daemon, stop: () => daemon.stop('SIGTERM') };
}
