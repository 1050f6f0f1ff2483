/**
 * Running the built CLI (`node bin/tokengate.js`) from tests, as a user would. The demo embeds
 * PGlite, which cannot start inside Jest's VM, and a CLI under test must not share the test's
 * event loop anyway, so these are always child processes.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '../..');
export const BIN = join(ROOT, 'bin/tokengate.js');

/** Files whose compile errors must fail these tests (others' work in progress only warns). */
const OURS = /^(src\/cli\/(token|demo)\.ts|src\/demo\/|src\/identity\/(clientCredentials|devIssuer)\.ts)/m;

let built: Promise<void> | undefined;

/**
 * Inside the lock: rebuild only when a source is newer than dist/. A rebuild rewrites dist/ in
 * place, which would pull files from under a CLI another test file is running right now.
 */
const BUILD_IF_STALE = `
const fs = require('node:fs'), path = require('node:path'), { execFileSync } = require('node:child_process');
const newest = (dir) => fs.readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
  const p = path.join(dir, e.name);
  return Math.max(m, e.isDirectory() ? newest(p) : e.name.endsWith('.ts') ? fs.statSync(p).mtimeMs : 0);
}, 0);
const out = 'dist/src/cli/main.js';
const builtAt = fs.existsSync(out) ? fs.statSync(out).mtimeMs : 0;
const sources = Math.max(newest('src'), newest('protocols'), ...['package.json', 'tsconfig.json', 'tsconfig.build.json'].map((f) => fs.statSync(f).mtimeMs));
if (sources >= builtAt) execFileSync('npm', ['run', 'build'], { stdio: 'inherit' });
`;

/** Build dist/ (once per test file, and only when stale), serialised across Jest workers and engineers with flock. */
export function buildOnce(): Promise<void> {
  built ??= new Promise((resolvePromise, reject) => {
    execFile('flock', ['/tmp/tokengate-build.lock', process.execPath, '-e', BUILD_IF_STALE], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const out = `${stdout}${stderr}`;
      if (!existsSync(join(ROOT, 'dist/src/cli/main.js'))) return reject(new Error(`npm run build produced no dist/src/cli/main.js:\n${out}`));
      if (err && OURS.test(out)) return reject(new Error(`npm run build failed in files these tests cover:\n${out}`));
      if (err) process.stderr.write(`warning: npm run build reported errors outside the files under test:\n${out.slice(0, 2000)}\n`);
      resolvePromise();
    });
  });
  return built;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run a command to completion (asynchronously: never block the loop an in-process peer runs on). */
export function runCommand(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: o.cwd ?? ROOT, env: { ...process.env, ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
    // A child may exit before reading its input (EPIPE): that is its answer, not a test failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(o.input ?? '');
  });
}

/** `node bin/tokengate.js ...args` */
export function tokengate(args: string[], o: Parameters<typeof runCommand>[2] = {}): Promise<CliResult> {
  return runCommand(process.execPath, [BIN, ...args], o);
}

/** A long-running CLI process whose output is collected as it arrives. */
export interface Background {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout matches, rejects on exit or timeout (with the output so far). */
  waitForStdout(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startBackground(args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Background {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: o.cwd ?? ROOT, env: { ...process.env, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  /** Set once the process has exited and its output has ended. */
  let closed = false;
  child.on('close', () => (closed = true));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    // Checked on every chunk of output and when the output ends, so it resolves as soon as the line is there.
    waitForStdout(re, timeoutMs = 60_000) {
      return new Promise((resolvePromise, reject) => {
        const check = (): void => {
          const m = out.match(re);
          if (m) finish(() => resolvePromise(m));
          else if (closed) finish(() => reject(new Error(`the process exited before printing ${re}\nstdout:\n${out}\nstderr:\n${err}`)));
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`no ${re} within ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`))), timeoutMs);
        const finish = (settle: () => void): void => {
          clearTimeout(timer);
          child.stdout!.off('data', check);
          child.off('close', check);
          settle();
        };
        // Registered after the collectors above, so `out` already holds the chunk and `closed` is set.
        child.stdout!.on('data', check);
        child.on('close', check);
        check();
      });
    },
  };
}
