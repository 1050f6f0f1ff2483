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
}

/** How long a line may wait to be written with others, and how much text forces a write. */
const FLUSH_INTERVAL_MS = 10;
const FLUSH_BYTES = 64 * 1024;

/** A destination for batches of lines. */
interface TextOut {
  write(text: string): void;
  close(): Promise<void>;
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

  async close(): Promise<void> {
    this.flush();
    await this.out.close();
  }
}

function stdioOut(which: 'stdout' | 'stderr'): TextOut {
  const stream = which === 'stdout' ? process.stdout : process.stderr;
  return { write: (text) => void stream.write(text), close: () => Promise.resolve() };
}

/** Appends to `file`, creating its directory; a failure is reported once on the operational log. */
function fileOut(file: string): TextOut {
  const dir = path.dirname(file);
  if (!fs.existsSync(dir)) fs.mkdirSync(dir, { recursive: true });
  const stream = fs.createWriteStream(file, { flags: 'a' });
  let failed = false;
  stream.on('error', (err) => {
    if (failed) return;
    failed = true;
    log.error(`cannot write the audit log ${file}: ${err.message}; audit records are being lost. Fix audit.file (a writable file path, stdout or stderr) and restart`);
  });
  return {
    write: (text) => {
      if (!failed) stream.write(text);
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (failed || stream.destroyed) return resolve();
        stream.end(() => resolve());
      }),
  };
}
