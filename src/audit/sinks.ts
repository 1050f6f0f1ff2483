import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { log } from '../log';

/** Where finished audit lines go: audit.file's destination, or (tests) memory. */
export interface AuditSink {
  /** One record: a JSON text, without the line break. */
  write(line: string): void;
  /** Writes what is pending and releases the destination. */
  close?(): Promise<void>;
  /** Writes what is pending and opens the destination again (log rotation renamed the file). */
  reopen?(): Promise<void>;
  /** False while records cannot be written (the file cannot be opened or a write failed). */
  readonly healthy?: boolean;
}

/** How long a line may wait to be written with others, and how much text forces a write. */
const FLUSH_INTERVAL_MS = 10;
const FLUSH_BYTES = 64 * 1024;

/** A destination for batches of lines. */
interface TextOut {
  write(text: string): void;
  close(): Promise<void>;
  reopen?(): Promise<void>;
  readonly healthy?: boolean;
}

/** audit.file: `stdout`, `stderr` or a file path (appended to), written in batches. */
export function destinationSink(file: string): AuditSink {
  return new BatchedSink(file === 'stdout' || file === 'stderr' ? stdioOut(file) : fileOut(file));
}

/**
 * Collects lines for at most FLUSH_INTERVAL_MS (or FLUSH_BYTES) and writes them together: a
 * file write goes through libuv's thread pool and a write per record would cost a thread
 * hand-off (a system call on stdout) per statement.
 */
class BatchedSink implements AuditSink {
  private batch = '';
  private flushScheduled = false;

  constructor(private readonly out: TextOut) {}

  write(line: string): void {
    this.batch += line + os.EOL;
    if (this.batch.length >= FLUSH_BYTES) {
      this.flush();
      return;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setTimeout(this.flush, FLUSH_INTERVAL_MS);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.batch.length === 0) return;
    const text = this.batch;
    this.batch = '';
    this.out.write(text);
  };

  get healthy(): boolean {
    return this.out.healthy ?? true;
  }

  async reopen(): Promise<void> {
    this.flush();
    await this.out.reopen?.();
  }

  async close(): Promise<void> {
    this.flush();
    await this.out.close();
  }
}

function stdioOut(which: 'stdout' | 'stderr'): TextOut {
  const stream = which === 'stdout' ? process.stdout : process.stderr;
  return { write: (text) => void stream.write(text), close: () => Promise.resolve() };
}

/** Audit records hold SQL text: only the gateway's user may read the file it creates. */
const FILE_MODE = 0o600;
/** While the file cannot be written, how often a write tries to open it again. */
const RETRY_OPEN_MS = 1000;

/**
 * Appends to `file`, creating it (mode 0600) and its directory. A failure to open or write is
 * reported on the operational log with its cause, makes the sink unhealthy (audit.onFailure
 * decides what that means for new sessions), and later writes try to open the file again, at
 * most once a second, until one succeeds. reopen() closes the file and opens the path again.
 */
function fileOut(file: string): TextOut {
  const dir = path.dirname(file);
  if (!fs.existsSync(dir)) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  let stream: fs.WriteStream | undefined;
  let failedAt: number | undefined;
  let lastError: Error | undefined;
  let lost = 0;
  let started = false;

  const fail = (err: Error, what: string): void => {
    lastError = err;
    if (failedAt === undefined) {
      log.error(`cannot ${what} the audit log ${file}: ${err.message}; audit records are being lost` +
        ' (with audit.onFailure: refuse, new sessions are refused). Fix the file or its directory (permissions, disk space), then send SIGUSR2 or wait: tokengate retries every second');
    }
    failedAt = Date.now();
  };
  const open = (): boolean => {
    let fd: number;
    try {
      fd = fs.openSync(file, 'a', FILE_MODE);
    } catch (err) {
      if (started) fail(err as Error, 'open');
      else lastError = err as Error; // at startup the caller reports it
      return false;
    }
    const s = fs.createWriteStream(file, { fd, flags: 'a' });
    s.on('error', (err) => {
      if (stream === s) stream = undefined;
      s.destroy();
      fail(err, 'write to');
    });
    stream = s;
    if (failedAt !== undefined) {
      log.warn(`the audit log ${file} is writable again${lost ? `; ${lost} batch(es) of records were lost meanwhile` : ''}`);
      failedAt = undefined;
      lost = 0;
    }
    return true;
  };
  const closeStream = (s: fs.WriteStream | undefined): Promise<void> =>
    new Promise<void>((resolve) => {
      if (!s || s.destroyed) return resolve();
      s.end(() => resolve());
      s.once('error', () => resolve());
    });
  /** Opens the file again if it failed and the retry interval has passed; true when it is open. */
  const retry = (): boolean => {
    if (!stream && (failedAt === undefined || Date.now() - failedAt >= RETRY_OPEN_MS)) open();
    return stream !== undefined;
  };
  // An unusable path at startup stops the start (the error names the file); later failures keep the gateway running.
  if (!open()) throw lastError!;
  started = true;
  return {
    write: (text) => {
      if (retry()) stream!.write(text);
      else lost++;
    },
    get healthy() {
      return retry();
    },
    reopen: async () => {
      const old = stream;
      stream = undefined;
      await closeStream(old);
      open();
    },
    close: () => {
      const old = stream;
      stream = undefined;
      return closeStream(old);
    },
  };
}
