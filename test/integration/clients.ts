/**
 * Real client programs and drivers pointed at a harness gateway: psql, the mariadb CLI, mysql2,
 * and any other program (python3, bash scripts) run as a child process.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import mysql from 'mysql2/promise';
import type { MysqlHarness, RunningGateway } from './harness';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A client program still running: its process (to signal it by PID) and its outcome. */
export interface ClientProcess {
  child: ChildProcessWithoutNullStreams;
  /** The output so far. */
  output(): string;
  result: Promise<RunResult>;
}

/** Start a real client program (psql, python3); it is SIGKILLed if it outlives `timeoutMs`. */
export function spawnClient(cmd: string, args: string[], env: Record<string, string> = {}, input?: string, timeoutMs = 30000): ClientProcess {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const result = new Promise<RunResult>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  // A child may exit before reading its input (EPIPE): that is its answer, not a test failure.
  child.stdin.on('error', () => undefined);
  child.stdin.end(input ?? '');
  return { child, output: () => stdout + stderr, result };
}

/** Run a real client program to completion and collect its output. */
export function run(cmd: string, args: string[], env: Record<string, string> = {}, input?: string, timeoutMs = 30000): Promise<RunResult> {
  return spawnClient(cmd, args, env, input, timeoutMs).result;
}

/** libpq's connection string for the gateway. */
export function pgConninfo(g: RunningGateway, o: { user?: string; db?: string; sslmode?: string } = {}): string {
  return `host=127.0.0.1 port=${g.port} user=${o.user ?? 'reader'} dbname=${o.db ?? 'app'} sslmode=${o.sslmode ?? 'disable'}`;
}

/** psql through the gateway with the token as PGPASSWORD. */
export function psql(g: RunningGateway, token: string, sql: string, o: { user?: string; db?: string; sslmode?: string; extra?: string[]; env?: Record<string, string> } = {}): Promise<RunResult> {
  return run('psql', [pgConninfo(g, o), '-X', '-v', 'ON_ERROR_STOP=1', '-At', ...(o.extra ?? []), '-c', sql], { PGPASSWORD: token, PGCONNECT_TIMEOUT: '10', ...(o.env ?? {}) });
}

/** mysql2 through the gateway with the token as the password (mysql_clear_password enabled). */
export function connectMysql2(g: RunningGateway, token: string, o: Partial<mysql.ConnectionOptions> = {}): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: '127.0.0.1', port: g.port, user: 'reader', database: 'app', password: token,
    enableCleartextPlugin: true, connectTimeout: 10000, ...o,
  });
}

/** The stock mariadb CLI through the gateway, the token in MYSQL_PWD. */
export function mariadbCli(g: RunningGateway, token: string, sql: string, o: { user?: string; db?: string | null; extra?: string[] } = {}): Promise<RunResult> {
  const db = o.db === undefined ? 'app' : o.db;
  return run('mariadb', [
    '--no-defaults', '-h127.0.0.1', `-P${g.port}`, `-u${o.user ?? 'reader'}`, ...(db ? [`-D${db}`] : []),
    '--batch', '--skip-column-names', ...(o.extra ?? ['--skip-ssl']), '-e', sql,
  ], { MYSQL_PWD: token });
}

/** Rows of the upstream's process list for one of the harness users. */
export async function upstreamThreads(h: MysqlHarness, user: string): Promise<{ ID: number; DB: string | null; COMMAND: string; INFO: string | null }[]> {
  return (await h.admin('SELECT ID, DB, COMMAND, INFO FROM information_schema.PROCESSLIST WHERE USER = ?', [user])) as never;
}
