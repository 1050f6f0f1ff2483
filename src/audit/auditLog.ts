import { log } from '../log';
import type { AuditConfig } from '../config/schema';
import type { AuditEvent } from './events';
import { formatRecord, queryLineFormatter, type QueryOutcome, type QuerySession } from './format';
import { destinationSink, type AuditSink } from './sinks';
import { isoNow } from './timestamp';

export type { AuditSink } from './sinks';
export type { QueryOutcome, QuerySession } from './format';

/** The query records of one session (AuditLog.queryLog). */
export interface QueryLog {
  write(q: QueryOutcome): void;
}

/**
 * Writes audit events as JSON lines (docs/audit.md) to audit.file (stdout, stderr or a file,
 * in batches), or to the sink given (tests capture the lines in memory).
 */
export class AuditLog {
  private sink: AuditSink;
  #config: AuditConfig;
  readonly #injected: boolean;
  readonly #observers: ((event: AuditEvent) => void)[] = [];

  constructor(config: AuditConfig, sink?: AuditSink) {
    this.#config = config;
    this.#injected = sink !== undefined;
    this.sink = sink ?? destinationSink(config.file);
  }

  /** The audit settings in force; sessions read them when they start. */
  get config(): AuditConfig {
    return this.#config;
  }

  /** New settings (a reload): a new audit.file is opened, and the old destination closed after its last batch. */
  reconfigure(next: AuditConfig): void {
    const previous = this.#config;
    this.#config = next;
    if (this.#injected || next.file === previous.file) return;
    let sink: AuditSink;
    try {
      sink = destinationSink(next.file);
    } catch (err) {
      log.error(`cannot open the new audit.file ${next.file} (${(err as Error).message}); audit records still go to ${previous.file}`);
      this.#config = { ...next, file: previous.file };
      return;
    }
    const old = this.sink;
    this.sink = sink;
    void old.close?.();
  }

  /** False while records cannot be written (audit.onFailure decides what that means for new sessions). */
  get healthy(): boolean {
    return this.sink.healthy ?? true;
  }

  /** Whether new sessions may start: the audit log is writable, or audit.onFailure is continue. */
  get admitsSessions(): boolean {
    return this.#config.onFailure === 'continue' || this.healthy;
  }

  /** Writes what is pending and opens audit.file again (after log rotation renamed it). */
  async reopen(): Promise<void> {
    await this.sink.reopen?.();
  }

  /** Hears every record write() makes (the metrics count connections and session ends from them). */
  onWrite(observer: (event: AuditEvent) => void): void {
    this.#observers.push(observer);
  }

  write(event: AuditEvent): void {
    for (const observe of this.#observers) observe(event);
    this.sink.write(formatRecord(event, isoNow()));
  }

  /**
   * Query records for one session: the same lines as write() makes of `query` events, with the
   * session's fields serialized once instead of with every statement.
   */
  queryLog(session: QuerySession): QueryLog {
    const format = queryLineFormatter(session);
    return { write: (q) => this.sink.write(format(q, isoNow())) };
  }

  /** Cut SQL text at maxQueryBytes (on a UTF-8 boundary). */
  clip(sql: string): { sql: string; truncated: boolean } {
    const max = this.config.maxQueryBytes;
    // A UTF-16 code unit is at most 3 bytes of UTF-8: most statements need no count.
    if (sql.length * 3 <= max || Buffer.byteLength(sql) <= max) return { sql, truncated: false };
    return { sql: Buffer.from(sql).subarray(0, max).toString('utf8').replace(/\uFFFD$/, ''), truncated: true };
  }

  async close(): Promise<void> {
    await this.sink.close?.();
  }
}
