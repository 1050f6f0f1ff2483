import type { AuditSink } from '../../src/audit/auditLog';

/** Collects audit records in memory so tests can assert on them. */
export class MemoryTransport implements AuditSink {
  readonly records: Record<string, unknown>[] = [];
  /** Every line exactly as it would have been written (for "no secret anywhere" checks). */
  readonly lines: string[] = [];

  write(line: string): void {
    this.lines.push(line);
    this.records.push(JSON.parse(line) as Record<string, unknown>);
  }

  ofEvent(event: string): Record<string, unknown>[] {
    return this.records.filter((r) => r.event === event);
  }

  /** Wait until a record matching `pred` arrives (audit writes can trail the client's view a little). */
  async waitFor(pred: (r: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.records.find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`no audit record matched within ${timeoutMs}ms; have: ${this.lines.slice(-5).join('\n')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
