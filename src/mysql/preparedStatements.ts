/** Statement ids remembered per session; a client that never closes statements cannot grow it past this. */
const MAX_STATEMENTS = 1000;
/** MariaDB's "the statement just prepared" id (COM_STMT_EXECUTE right behind COM_STMT_PREPARE). */
export const LAST_PREPARED_STATEMENT = 0xffffffff;

/**
 * Statement id -> SQL text, learned from each COM_STMT_PREPARE response, so the audit
 * record of a COM_STMT_EXECUTE can name the statement it ran. Oldest entries go first.
 */
export class MysqlPreparedStatements {
  private readonly byId = new Map<number, string>();
  private last: string | undefined;

  prepared(statementId: number, sql: string): void {
    if (!this.byId.has(statementId) && this.byId.size >= MAX_STATEMENTS) {
      this.byId.delete(this.byId.keys().next().value as number);
    }
    this.byId.set(statementId, sql);
    this.last = sql;
  }

  closed(statementId: number): void {
    this.byId.delete(statementId);
  }

  /** The SQL of a statement id, or a placeholder naming the id when it is unknown (or was evicted). */
  sqlOf(statementId: number): string {
    const sql = statementId === LAST_PREPARED_STATEMENT ? this.last : this.byId.get(statementId);
    return sql ?? `<prepared statement ${statementId}>`;
  }

  get size(): number {
    return this.byId.size;
  }
}
