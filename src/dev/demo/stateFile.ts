/**
 * The running demo's state: how `tokengate token --demo` finds the demo issuer and its clients.
 * $TMPDIR/tokengate-demo/demo.json, directory 0700 and file 0600, because it holds the demo
 * clients' (development) secrets. Removed when the demo stops.
 */
import { chmodSync, closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface DemoClientState {
  clientId: string;
  /** client_secret_basic clients. */
  clientSecret?: string;
  /** The private_key_jwt client: its PEM key file (0600) and kid. */
  privateKeyFile?: string;
  keyId?: string;
  groups: string[];
  scopes: string[];
  /** The role and database alias this client's grant allows, for the printed examples. */
  role: string;
}

export interface DemoState {
  version: 1;
  pid: number;
  startedAt: string;
  issuer: string;
  tokenEndpoint: string;
  expiredTokenEndpoint: string;
  audience: string;
  clients: DemoClientState[];
  /** The gateway's PostgreSQL listener, host:port. */
  postgres: string;
  /** Its MySQL listener, with `--mysql`. */
  mysql?: string;
  /** The database alias agents use. */
  database: string;
  /** What the gateway relays to: "embedded PGlite" or postgres://host:port/db (no credentials). */
  upstream: string;
  /** The MySQL server behind the MySQL listener (no credentials). */
  mysqlUpstream?: string;
  /** The generated gateway config (secrets are environment references, not values). */
  configFile: string;
}

export class DemoStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DemoStateError';
  }
}

/** The directory of the state file; TMPDIR decides where, as for every temporary file. */
export function demoDir(): string {
  return join(tmpdir(), 'tokengate-demo');
}

export function demoStatePath(): string {
  return join(demoDir(), 'demo.json');
}

/** True when a process with this pid exists (signal 0 checks without sending anything). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Creates the demo directory 0700, refusing one that others can write into or that is not ours. */
export function ensureDemoDir(): string {
  const dir = demoDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fd = openSync(dir, 'r');
  try {
    const st = fstatSync(fd);
    if (!st.isDirectory()) throw new DemoStateError(`${dir} is not a directory; remove it and start the demo again`);
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
      throw new DemoStateError(`${dir} belongs to another user (uid ${st.uid}); set TMPDIR to a directory of your own`);
    }
    if (st.mode & 0o077) chmodSync(dir, 0o700);
  } finally {
    closeSync(fd);
  }
  return dir;
}

/** Writes the state atomically with mode 0600. */
export function writeDemoState(state: DemoState): string {
  ensureDemoDir();
  const path = demoStatePath();
  const tmp = `${path}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify(state, null, 2) + '\n');
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return path;
}

/** Removes the state file if it is still the one this process wrote. */
export function removeDemoState(pid = process.pid): void {
  const path = demoStatePath();
  try {
    if (readDemoStateFile(path).pid !== pid) return;
  } catch {
    return;
  }
  rmSync(path, { force: true });
}

function readDemoStateFile(path: string): DemoState {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new DemoStateError(`no running demo found (${path} does not exist); start one in another terminal with: npx tokengate demo`);
    }
    throw new DemoStateError(`cannot read the demo state ${path} (${(err as NodeJS.ErrnoException).code}); it belongs to whoever started the demo`);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (st.size > 256 * 1024) throw new DemoStateError(`${path} is ${st.size} bytes; it is not a demo state file`);
    const buf = Buffer.alloc(st.size);
    text = buf.subarray(0, readSync(fd, buf, 0, st.size, 0)).toString('utf8');
  } finally {
    closeSync(fd);
  }
  let state: DemoState;
  try {
    state = JSON.parse(text) as DemoState;
  } catch {
    throw new DemoStateError(`${path} is not valid JSON; stop the demo, delete the file and start the demo again`);
  }
  if (state?.version !== 1 || typeof state.tokenEndpoint !== 'string' || !Array.isArray(state.clients)) {
    throw new DemoStateError(`${path} is not a demo state file of this tokengate version; restart the demo`);
  }
  return state;
}

/** The state of the running demo; a file left by a demo that is gone is reported as such. */
export function readDemoState(): DemoState {
  const path = demoStatePath();
  const state = readDemoStateFile(path);
  if (!processAlive(state.pid)) {
    throw new DemoStateError(`the demo that wrote ${path} (pid ${state.pid}) is no longer running; start it again with: npx tokengate demo`);
  }
  return state;
}
