import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import winston from 'winston';
import type { AuditConfig } from '../config/schema';
import { log } from '../log';
import type { AuditEvent } from './events';
import { formatAuditLine } from './auditLine';

/** Each record as one JSON line: sorted keys, with `level`, `message` and an ISO `timestamp`. */
const AUDIT_FORMAT = winston.format.combine(winston.format.timestamp(), winston.format.json());
/** Where logform's json format leaves the serialized line (triple-beam's MESSAGE). */
const MESSAGE = Symbol.for('message');
/** How long a record may wait to be written with others, and how much text forces a write. */
const FLUSH_INTERVAL_MS = 10;
const FLUSH_BYTES = 64 * 1024;

/** A destination for finished lines. */
interface LineSink {
  write(text: string): void;
  close(): Promise<void>;
}

/**
 * Writes audit events as JSON lines to stdout, stderr or a file.
 *
 * The lines are byte for byte what winston's timestamp() + json() formats made
 * (formatAuditLine), but formatted and written without winston: its object streams took about
 * a sixth of the gateway's CPU when clients connect per transaction (docs/performance.md).
 * Lines are collected for at most FLUSH_INTERVAL_MS (or FLUSH_BYTES) and written together:
 * a file write goes through libuv's thread pool, and one per event-loop turn cost a thread
 * hand-off per connection under connect-per-query load. A custom transport (the tests'
 * in-memory one) still goes through winston.
 */
export class AuditLog {
  private readonly logger?: winston.Logger;
  private readonly sink?: LineSink;
  private batch = '';
  private flushScheduled = false;

  constructor(readonly config: AuditConfig, transport?: winston.transport) {
    if (transport) {
      this.logger = winston.createLogger({ level: 'info', format: AUDIT_FORMAT, transports: [transport] });
    } else {
      this.sink = sinkFor(config.file);
    }
  }

  write(event: AuditEvent): void {
    if (this.logger) {
      this.logger.info({ message: event.event, ...event });
      return;
    }
    this.batch += formatAuditLine(event) + os.EOL;
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
    this.sink!.write(text);
  };

  /** Cut SQL text at maxQueryBytes (on a UTF-8 boundary). */
  clip(sql: string): { sql: string; truncated: boolean } {
    const max = this.config.maxQueryBytes;
    if (Buffer.byteLength(sql) <= max) return { sql, truncated: false };
    return { sql: Buffer.from(sql).subarray(0, max).toString('utf8').replace(/\uFFFD$/, ''), truncated: true };
  }

  async close(): Promise<void> {
    if (this.logger) {
      const logger = this.logger;
      await new Promise<void>((resolve) => {
        logger.on('finish', () => resolve());
        logger.end();
      });
      return;
    }
    this.flush();
    await this.sink!.close();
  }
}

function sinkFor(file: string): LineSink {
  if (file === 'stdout' || file === 'stderr') {
    const stream = file === 'stdout' ? process.stdout : process.stderr;
    return { write: (text) => void stream.write(text), close: () => Promise.resolve() };
  }
  return fileSink(file);
}

/** Appends to `file` (creating its directory, as winston's File transport did). */
function fileSink(file: string): LineSink {
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
