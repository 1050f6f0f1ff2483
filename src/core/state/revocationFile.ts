import { closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { log } from '../../log';
import { InProcessRevocations, type NewRevocation, type Revocation, type RevocationTarget } from './revocations';

/**
 * Revocations that survive a restart: kept in memory like InProcessRevocations and written, on
 * every change, to `revocations.json` in state.dir. The file is replaced atomically (a temp file
 * written and fsynced, then renamed over it, then the directory fsynced), so a crash leaves the
 * old list or the new one, never half of either. Entries that lapsed are dropped when it is read
 * and whenever it is written.
 */

export const REVOCATIONS_FILE = 'revocations.json';
const FORMAT_VERSION = 1;

/** state.dir cannot be used: the gateway does not start (what to fix is in the message). */
export class StateDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateDirError';
  }
}

/** One revocation as stored: times as ISO strings, the target as one of sub, client, jti. */
interface StoredRevocation {
  id: string;
  sub?: string;
  client?: string;
  jti?: string;
  reason?: string;
  by?: string;
  createdAt: string;
  until?: string;
  expiresAt?: string;
}

export interface RevocationFileOptions {
  /** Check now that state.dir can be written (creating it if missing); with the admin API on, revocations are made here. */
  writable: boolean;
}

/** Reads state.dir's revocations (none when the file or the directory does not exist yet) and keeps them there. */
export function openRevocationFile(dir: string, now: number, o: RevocationFileOptions): FileRevocations {
  if (o.writable) checkWritable(dir);
  const entries = readRevocations(dir).filter((r) => r.expiresAt === undefined || now < r.expiresAt);
  return new FileRevocations(dir, entries);
}

export class FileRevocations extends InProcessRevocations {
  readonly file: string;

  constructor(readonly dir: string, entries: Revocation[]) {
    super();
    this.file = join(dir, REVOCATIONS_FILE);
    for (const r of entries) this.restore(r);
  }

  override add(input: NewRevocation, now: number, maxTokenLifetimeMs?: number): Revocation {
    const r = super.add(input, now, maxTokenLifetimeMs);
    this.#save(now, `revocation ${r.id} is in force`);
    return r;
  }

  override remove(id: string): Revocation | undefined {
    const r = super.remove(id);
    // A removal is not given the time: lapsed entries stay in the file until the next add.
    if (r) this.#save(0, `revocation ${r.id} was removed`);
    return r;
  }

  /**
   * Writes the list in force. A failed write keeps the change in this process (a revocation
   * made during an incident must apply at once) and says on the operational log that it will
   * not survive a restart.
   */
  #save(now: number, what: string): void {
    try {
      // Without the admin API the directory is not made at start; the first revocation makes it.
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      writeAtomically(this.dir, this.file, JSON.stringify({ version: FORMAT_VERSION, revocations: this.list(now).map(stored) }, null, 2) + '\n');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      log.error(`cannot write ${this.file} (${e.code ?? e.message}): ${what} in this process but the change will not survive a restart; make state.dir (${this.dir}) writable by the tokengate user`);
    }
  }
}

function stored(r: Revocation): StoredRevocation {
  const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());
  return { id: r.id, ...r.target, reason: r.reason, by: r.by, createdAt: iso(r.createdAt)!, until: iso(r.until), expiresAt: iso(r.expiresAt) };
}

function readRevocations(dir: string): Revocation[] {
  const file = join(dir, REVOCATIONS_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return [];
    throw new StateDirError(`cannot read the revocations in state.dir ${dir}: ${file} (${e.code ?? e.message}); fix state.dir, or let the tokengate user read that file`);
  }
  try {
    return parseRevocations(text);
  } catch (err) {
    throw new StateDirError(`${file} is not a tokengate revocations file (${(err as Error).message}); restore it from a backup, or move it away to start without its revocations`);
  }
}

function parseRevocations(text: string): Revocation[] {
  const doc = JSON.parse(text) as { version?: unknown; revocations?: unknown };
  if (doc?.version !== FORMAT_VERSION || !Array.isArray(doc.revocations)) throw new Error(`expected {"version": ${FORMAT_VERSION}, "revocations": [...]}`);
  return doc.revocations.map((item: StoredRevocation, i: number) => {
    const at = (value: unknown, key: string): number | undefined => {
      if (value === undefined) return undefined;
      const ms = typeof value === 'string' ? Date.parse(value) : NaN;
      if (Number.isNaN(ms)) throw new Error(`revocations[${i}].${key} is not an ISO time`);
      return ms;
    };
    const targets = (['sub', 'client', 'jti'] as const).filter((k) => typeof item?.[k] === 'string');
    if (typeof item?.id !== 'string' || targets.length !== 1) throw new Error(`revocations[${i}] needs an id and exactly one of sub, client, jti`);
    const key = targets[0];
    const target = { [key]: item[key] } as RevocationTarget;
    const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
    return { id: item.id, target, reason: text(item.reason), by: text(item.by), createdAt: at(item.createdAt, 'createdAt') ?? NaN, until: at(item.until, 'until'), expiresAt: at(item.expiresAt, 'expiresAt') };
  }).map((r, i) => {
    if (Number.isNaN(r.createdAt)) throw new Error(`revocations[${i}].createdAt is missing`);
    return r;
  });
}

/** Creates state.dir (0700) if it is missing and proves a file can be written in it. */
function checkWritable(dir: string): void {
  const probe = join(dir, `.write-check.${process.pid}`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeAtomically(dir, probe, '');
    rmSync(probe, { force: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new StateDirError(
      `state.dir ${dir} is not writable (${e.code ?? e.message}): revocations made through the admin API must survive a restart. ` +
      'Create it for the tokengate user (systemd: StateDirectory=tokengate) or point state.dir at a writable directory',
    );
  }
}

/** Temp file (0600) written and fsynced, renamed over `file`, then the directory fsynced. */
function writeAtomically(dir: string, file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    const fd = openSync(tmp, 'w', 0o600);
    try {
      fchmodSync(fd, 0o600);
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  const dirFd = openSync(dir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
