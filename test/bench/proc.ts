/** Child processes, ports and files for the benchmark harness. */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs a program to completion and collects its output (never through a shell). */
export function run(cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...o.env }, cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let timedOut = false;
    const timer = o.timeoutMs ? setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, o.timeoutMs) : undefined;
    const finish = (code: number | null): void => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    };
    child.on('error', reject);
    // 'close' waits for every holder of the output pipes; after a timeout a grandchild may still hold them.
    child.on('exit', (code) => timedOut && finish(code));
    child.on('close', finish);
  });
}

/** Like run(), but a non-zero exit is an error that quotes the tail of stderr. */
export async function runOk(cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, o);
  if (r.code !== 0) throw new Error(`${cmd} ${args[0] ?? ''} exited with ${r.code}: ${tail(r.stderr || r.stdout)}`);
  return r;
}

export function tail(text: string, chars = 600): string {
  const t = text.trim();
  return t.length > chars ? '…' + t.slice(-chars) : t;
}

/** A long-running child whose stdout+stderr go to a log file (read back on failure). */
export interface Daemon {
  name: string;
  child: ChildProcess;
  logFile: string;
  /** Resolves when the process has exited. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

/** A command prefix a daemon runs under (e.g. valgrind), and how long it may take to start listening. */
export interface Wrapper {
  command: string[];
  startTimeoutMs: number;
}

export function startDaemon(
  name: string, cmd: string, args: string[], logFile: string, o: { env?: Record<string, string>; cwd?: string; wrapper?: Wrapper } = {},
): Daemon {
  const fd = openSync(logFile, 'a');
  const [bin, ...argv] = o.wrapper ? [...o.wrapper.command, cmd, ...args] : [cmd, ...args];
  const child = spawn(bin, argv, { env: { ...process.env, ...o.env }, cwd: o.cwd, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  let running = true;
  void exited.then(() => (running = false));
  return {
    name,
    child,
    logFile,
    exited,
    async stop(signal = 'SIGTERM', graceMs = 10_000) {
      if (!running) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

export function logTail(file: string, chars = 1200): string {
  return existsSync(file) ? tail(readFileSync(file, 'utf8'), chars) : '(no log)';
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Waits until something accepts TCP connections on host:port; fails early if the daemon exits. */
export async function waitForPort(port: number, o: { host?: string; timeoutMs?: number; daemon?: Daemon } = {}): Promise<void> {
  const host = o.host ?? '127.0.0.1';
  const deadline = Date.now() + (o.timeoutMs ?? 20_000);
  let dead = false;
  void o.daemon?.exited.then(() => (dead = true));
  while (Date.now() < deadline) {
    if (dead) throw new Error(`${o.daemon!.name} exited before listening on ${host}:${port}: ${logTail(o.daemon!.logFile)}`);
    if (await canConnect(port, host)) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on ${host}:${port} after ${(o.timeoutMs ?? 20_000) / 1000}s${o.daemon ? `; ${o.daemon.name} log: ${logTail(o.daemon.logFile)}` : ''}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Absolute path of an executable on PATH (or in extra dirs), or undefined. */
export function which(bin: string, extraDirs: string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), ...extraDirs];
  for (const d of dirs) {
    const p = path.join(d, bin);
    if (d && existsSync(p)) return p;
  }
  return undefined;
}

function idOf(flag: '-u' | '-g', user: string): number {
  return Number(execFileSync('id', [flag, user]).toString().trim());
}

/** Gives a file or directory to a system user (servers that drop root read their files after the switch). */
export function giveTo(user: string, ...paths: string[]): void {
  const uid = idOf('-u', user);
  const gid = idOf('-g', user);
  for (const p of paths) chownSync(p, uid, gid);
}

/** The repository root: the nearest directory above `from` with tokengate's package.json. */
export function repoRoot(from = __dirname): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'tokengate') return dir;
    if (path.dirname(dir) === dir) throw new Error(`cannot find the tokengate repository above ${from}`);
  }
}
