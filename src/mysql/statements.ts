/**
 * Recognises the two SQL statements the gateway must answer itself instead of relaying:
 * `USE db` (the database is a client-facing alias) and `KILL [QUERY|CONNECTION] id` (the id
 * is a tokengate connection id). A small lexer splits the text into statements, skipping
 * strings, quoted identifiers and comments (MySQL's executable comments count as code), so
 * `select 'use x'` or `/* kill 1 *\/ select 1` are not mistaken for them.
 */

export type QueryIntent =
  | { kind: 'other' }
  | { kind: 'use'; schema: string }
  | { kind: 'kill'; scope: 'query' | 'connection'; id: number }
  /** A KILL form the gateway cannot translate (KILL USER, KILL QUERY ID, an expression). */
  | { kind: 'unsupported_kill' }
  /** USE or KILL inside a multi-statement text: they must be sent on their own. */
  | { kind: 'embedded'; keyword: 'USE' | 'KILL' };

type TokenKind = 'word' | 'quoted' | 'string' | 'symbol';
interface Token {
  kind: TokenKind;
  text: string;
}

/** Tokens kept per statement: enough for `KILL HARD CONNECTION 123`. */
const TOKENS_KEPT = 6;

interface Statement {
  tokens: Token[];
  /** Tokens seen in all (the kept ones are the first TOKENS_KEPT). */
  count: number;
}

const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const isWordChar = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x24 || c >= 0x80;

/** Splits SQL text into statements (at `;` outside quotes and comments) and tokenises their starts. */
export function splitStatements(sql: string): Statement[] {
  const out: Statement[] = [];
  let current: Statement = { tokens: [], count: 0 };
  // Token text is only materialised for the tokens kept, so a long statement costs no allocations.
  const add = (kind: TokenKind, text: () => string): void => {
    if (current.tokens.length < TOKENS_KEPT) current.tokens.push({ kind, text: text() });
    current.count++;
  };
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isSpace(c)) {
      i++;
    } else if (c === 0x3b /* ; */) {
      if (current.count > 0) out.push(current);
      current = { tokens: [], count: 0 };
      i++;
    } else if (c === 0x23 /* # */ || (c === 0x2d && sql.charCodeAt(i + 1) === 0x2d && (i + 2 >= n || isSpace(sql.charCodeAt(i + 2))))) {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
    } else if (c === 0x2f /* / */ && sql.charCodeAt(i + 1) === 0x2a /* * */) {
      // `/*!50700 code */` and MariaDB's `/*M!100100 code */` are executed: lex their body as code.
      let j = i + 2;
      if (sql[j] === 'M' && sql[j + 1] === '!') j += 2;
      else if (sql[j] === '!') j += 1;
      else {
        const end = sql.indexOf('*/', j);
        i = end < 0 ? n : end + 2;
        continue;
      }
      while (j < n && sql.charCodeAt(j) >= 0x30 && sql.charCodeAt(j) <= 0x39) j++;
      i = j;
    } else if (c === 0x2a /* * */ && sql.charCodeAt(i + 1) === 0x2f /* / */) {
      i += 2; // the end of an executable comment
    } else if (c === 0x27 /* ' */ || c === 0x22 /* " */ || c === 0x60 /* ` */) {
      const start = i;
      const end = skipQuoted(sql, start);
      add(c === 0x27 ? 'string' : 'quoted', () => unquote(sql, start, end));
      i = end;
    } else if (isWordChar(c)) {
      const start = i;
      let j = i + 1;
      while (j < n && isWordChar(sql.charCodeAt(j))) j++;
      add('word', () => sql.slice(start, j));
      i = j;
    } else {
      const start = i;
      add('symbol', () => sql[start]);
      i++;
    }
  }
  if (current.count > 0) out.push(current);
  return out;
}

/** The index just past the quoted string or identifier starting at `start` (doubled quotes; backslash escapes outside backticks). */
function skipQuoted(sql: string, start: number): number {
  const q = sql.charCodeAt(start);
  let i = start + 1;
  while (i < sql.length) {
    const ch = sql.charCodeAt(i);
    if (ch === 0x5c /* \\ */ && q !== 0x60) i += 2;
    else if (ch === q) {
      if (sql.charCodeAt(i + 1) !== q) return i + 1;
      i += 2;
    } else i++;
  }
  return sql.length; // unterminated: the server will reject the statement
}

/** The value of the quoted token sql[start, end). */
function unquote(sql: string, start: number, end: number): string {
  const q = sql[start];
  const closed = end - start >= 2 && sql[end - 1] === q;
  const body = sql.slice(start + 1, closed ? end - 1 : end);
  const doubled = body.split(q + q).join(q);
  return q === '`' ? doubled : doubled.replace(/\\(.)/gs, '$1');
}

/** Texts without these letters cannot hold a USE or KILL statement. */
const MAYBE_INTERCEPTED = /use|kill/i;

const upper = (t: Token | undefined): string => (t && t.kind === 'word' ? t.text.toUpperCase() : '');

/**
 * What a COM_QUERY text asks for, as far as the gateway cares. For a very long query the
 * caller passes a prefix; only the statements in it are checked.
 */
export function classifyQuery(sql: string): QueryIntent {
  if (!MAYBE_INTERCEPTED.test(sql)) return { kind: 'other' }; // most queries: one native scan, nothing allocated
  const statements = splitStatements(sql);
  if (statements.length === 0) return { kind: 'other' };
  for (const s of statements) {
    const kw = upper(s.tokens[0]);
    if ((kw === 'USE' || kw === 'KILL') && statements.length > 1) return { kind: 'embedded', keyword: kw };
  }
  const [only] = statements;
  const keyword = upper(only.tokens[0]);
  if (keyword === 'USE') return classifyUse(only);
  if (keyword === 'KILL') return classifyKill(only);
  return { kind: 'other' };
}

function classifyUse(s: Statement): QueryIntent {
  const name = s.tokens[1];
  if (s.count !== 2 || !name || (name.kind !== 'word' && name.kind !== 'quoted')) return { kind: 'other' }; // let the server report the syntax error
  return { kind: 'use', schema: name.text };
}

function classifyKill(s: Statement): QueryIntent {
  let i = 1;
  if (['HARD', 'SOFT'].includes(upper(s.tokens[i]))) i++;
  let scope: 'query' | 'connection' = 'connection';
  const kw = upper(s.tokens[i]);
  if (kw === 'QUERY') {
    scope = 'query';
    i++;
  } else if (kw === 'CONNECTION') {
    i++;
  }
  const id = s.tokens[i];
  if (!id || id.kind !== 'word' || !/^[0-9]{1,10}$/.test(id.text) || s.count !== i + 1) return { kind: 'unsupported_kill' };
  const value = Number(id.text);
  if (value > 0xffffffff) return { kind: 'unsupported_kill' };
  return { kind: 'kill', scope, id: value };
}
