/**
 * Follows the request/response rhythm of a relayed PostgreSQL session, from message headers
 * only: every simple Query, every Sync and every FunctionCall gets exactly one ReadyForQuery.
 * That tells when a statement finished (for the audit record) and whether the upstream
 * connection is idle and clean when the client leaves.
 */

import { coarseNow } from '../core/coarseClock';

export interface CompletedQuery {
  sql: string;
  startedAt: number;
  durationMs: number;
  tags: string[];
  sqlState?: string;
  error?: string;
}

/** Tags of a request that has seen no CommandComplete yet; replaced (never pushed to) on the first one. Frozen so a slip throws. */
const NO_TAGS = Object.freeze([]) as unknown as string[];

/**
 * One outstanding request. It becomes the CompletedQuery itself at ReadyForQuery (no copy), and
 * every field exists from the start so all records share one object shape.
 */
function newRequest(sql: string, startedAt: number): CompletedQuery {
  return { sql, startedAt, durationMs: 0, tags: NO_TAGS, sqlState: undefined, error: undefined };
}

/** Prepared statements remembered for audit text; bounded so a client cannot grow it forever. */
const MAX_STATEMENTS = 1000;

export class PgQueryTracker {
  private readonly pending: CompletedQuery[] = [];
  private readonly statements = new Map<string, string>();
  /** SQL of the extended-protocol batch being built (Parse/Bind since the last Sync). */
  private readonly batch: string[] = [];
  txStatus: 'I' | 'T' | 'E' = 'I';
  /** When the oldest outstanding request was sent (wall clock, ms, to coarseNow's resolution), or undefined when none is. */
  busySince: number | undefined;

  /** `now` times the requests for their audit records; a relay that writes none passes a clock that reads nothing. */
  constructor(private readonly now: () => number = Date.now) {}

  private push(request: CompletedQuery): void {
    if (this.pending.length === 0) this.busySince = request.startedAt || coarseNow();
    this.pending.push(request);
  }

  /** Client sent a simple Query. */
  query(sql: string): void {
    this.push(newRequest(sql, this.now()));
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
    this.push(newRequest(this.batch.join('; '), this.now()));
    this.batch.length = 0;
  }

  /** Client sent a FunctionCall (fast-path). */
  functionCall(): void {
    this.push(newRequest('<function call>', this.now()));
  }

  /** Server sent CommandComplete. */
  commandComplete(tag: string): void {
    const head = this.pending[0];
    if (!head) return;
    if (head.tags === NO_TAGS) head.tags = [tag];
    else if (head.tags.length < 100) head.tags.push(tag);
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
    if (this.pending.length === 0) this.busySince = undefined;
    head.durationMs = this.now() - head.startedAt;
    return head;
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
