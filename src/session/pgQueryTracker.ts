/**
 * Follows the request/response rhythm of a relayed PostgreSQL session, from message headers
 * only: every simple Query, every Sync and every FunctionCall gets exactly one ReadyForQuery.
 * That tells when a statement finished (for the audit record) and whether the upstream
 * connection is idle and clean when the client leaves.
 */

export interface CompletedQuery {
  sql: string;
  startedAt: number;
  durationMs: number;
  tags: string[];
  sqlState?: string;
  error?: string;
}

interface Pending {
  sql: string;
  startedAt: number;
  tags: string[];
  sqlState?: string;
  error?: string;
}

/** Prepared statements remembered for audit text; bounded so a client cannot grow it forever. */
const MAX_STATEMENTS = 1000;

export class PgQueryTracker {
  private readonly pending: Pending[] = [];
  private readonly statements = new Map<string, string>();
  /** SQL of the extended-protocol batch being built (Parse/Bind since the last Sync). */
  private batch: string[] = [];
  txStatus: 'I' | 'T' | 'E' = 'I';

  constructor(private readonly now: () => number = Date.now) {}

  /** Client sent a simple Query. */
  query(sql: string): void {
    this.pending.push({ sql, startedAt: this.now(), tags: [] });
  }

  /** Client sent Parse: remember the statement's text for later Binds. */
  parse(statement: string, sql: string): void {
    if (statement) {
      if (!this.statements.has(statement) && this.statements.size >= MAX_STATEMENTS) {
        this.statements.delete(this.statements.keys().next().value as string);
      }
      this.statements.set(statement, sql);
    }
    this.batch.push(sql);
  }

  /** Client sent Bind of a named statement (unnamed ones were just Parsed into the batch). */
  bind(statement: string): void {
    if (statement) {
      const sql = this.statements.get(statement);
      if (sql !== undefined && this.batch[this.batch.length - 1] !== sql) this.batch.push(sql);
    }
  }

  /** Client sent Close of a statement. */
  closeStatement(statement: string): void {
    this.statements.delete(statement);
  }

  /** Client sent Sync: the batch is one auditable unit. */
  sync(): void {
    this.pending.push({ sql: this.batch.join('; '), startedAt: this.now(), tags: [] });
    this.batch = [];
  }

  /** Client sent a FunctionCall (fast-path). */
  functionCall(): void {
    this.pending.push({ sql: '<function call>', startedAt: this.now(), tags: [] });
  }

  /** Server sent CommandComplete. */
  commandComplete(tag: string): void {
    const head = this.pending[0];
    if (head && head.tags.length < 100) head.tags.push(tag);
  }

  /** Server sent ErrorResponse. */
  error(sqlState: string, message: string): void {
    const head = this.pending[0];
    if (head && head.sqlState === undefined) {
      head.sqlState = sqlState;
      head.error = message;
    }
  }

  /** Server sent ReadyForQuery: the oldest outstanding request finished. */
  readyForQuery(status: 'I' | 'T' | 'E'): CompletedQuery | undefined {
    this.txStatus = status;
    const head = this.pending.shift();
    if (!head) return undefined;
    return { ...head, durationMs: this.now() - head.startedAt };
  }

  /** Requests sent that have not yet been answered by ReadyForQuery. */
  get outstanding(): number {
    return this.pending.length;
  }

  /** True when the client is between requests (nothing outstanding, no half-built batch). */
  get idle(): boolean {
    return this.pending.length === 0 && this.batch.length === 0;
  }
}
