import winston from 'winston';
import type { AuditConfig } from '../config/types';
import type { AuditEvent } from './events';

/** Writes audit events as JSON lines to stdout, stderr or a file. */
export class AuditLog {
  private readonly logger: winston.Logger;

  constructor(readonly config: AuditConfig, transport?: winston.transport) {
    this.logger = winston.createLogger({
      level: 'info',
      format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
      transports: [transport ?? AuditLog.transportFor(config.file)],
    });
  }

  private static transportFor(file: string): winston.transport {
    if (file === 'stdout') return new winston.transports.Console();
    if (file === 'stderr') return new winston.transports.Console({ stderrLevels: ['info'] });
    return new winston.transports.File({ filename: file });
  }

  write(event: AuditEvent): void {
    this.logger.info({ message: event.event, ...event });
  }

  /** Cut SQL text at maxQueryBytes (on a UTF-8 boundary). */
  clip(sql: string): { sql: string; truncated: boolean } {
    const max = this.config.maxQueryBytes;
    if (Buffer.byteLength(sql) <= max) return { sql, truncated: false };
    return { sql: Buffer.from(sql).subarray(0, max).toString('utf8').replace(/\uFFFD$/, ''), truncated: true };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.logger.on('finish', () => resolve());
      this.logger.end();
    });
  }
}
