import type { AuditSink } from '../../src/audit/auditLog';
import { waitFor } from './waitFor';

/** Collects audit records in memory so tests can assert on them. */
export class MemoryTransport implements AuditSink {
  readonly records: Record<string, unknown>[] = [];
  /** Every line exactly as it would have been written (for "no secret anywhere" checks). */
  readonly lines: string[] = [];
  /** Set false to act as an audit file that cannot be written. */
  healthy = true;

  write(line: string): void {
    this.lines.push(line);
    this.records.push(JSON.parse(line) as Record<string, unknown>);
  }

  ofEvent(event: string): Record<string, unknown>[] {
    return this.records.filter((r) => r.event === event);
  }

  /** Wait until a record matching `pred` arrives (audit writes can trail the client's view a little). */
  waitFor(pred: (r: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<Record<string, unknown>> {
    return waitFor(() => this.records.find(pred), {
      what: 'an audit record that matches',
      timeoutMs,
      detail: () => `the last audit lines:\n${this.lines.slice(-5).join('\n')}`,
    });
  }
}
