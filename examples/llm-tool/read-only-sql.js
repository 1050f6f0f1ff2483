'use strict';
/**
 * A "run read-only SQL" tool for an LLM agent framework, reaching PostgreSQL through tokengate.
 *
 * The tool never throws at the model: it returns { ok: true, columns, rows, ... } or
 * { ok: false, error, code, advice }, where `error` is the database's or the gateway's own
 * message. tokengate writes those messages for whoever reads them, so an agent whose token
 * expired, or whose grant does not include a role, is told exactly that and what to do.
 *
 * Defence in depth, not the security boundary: the statement runs in a READ ONLY transaction
 * with a timeout and a row cap, but what the agent may read is decided by the upstream role
 * its grant maps to (docs/grants.md).
 *
 *   node examples/llm-tool/read-only-sql.js "select * from orders limit 5"   (OIDC_* and PG* as for agent.js)
 */
const { Client } = require('pg');
const { tokenSourceFromEnv, sslFromEnv } = require('../node-postgres/token-source');

/** The tool as declared to the model (JSON Schema input, the shape most frameworks take). */
const TOOL = {
  name: 'run_readonly_sql',
  description:
    'Run one read-only SQL query (PostgreSQL) on the analytics database and get the rows back. ' +
    'Writes are refused. At most 100 rows are returned. If ok is false, read `error` and `advice`.',
  input_schema: {
    type: 'object',
    properties: { sql: { type: 'string', description: 'a single SELECT (or WITH ... SELECT) statement' } },
    required: ['sql'],
  },
};

/** What an agent can do about each failure, by SQLSTATE class (the gateway's text says the rest). */
function adviceFor(code) {
  if (code === '28P01') return 'The access token was refused (expired or invalid). Call the tool again: it fetches a fresh token.';
  if (code === '28000') return 'Your identity is not allowed this role or database. Do not retry; ask a human to change the grant.';
  if (code === '25006') return 'This tool is read-only. Rewrite the query as a SELECT.';
  if (code === '42501') return 'The database role behind your grant may not read this object. Do not retry; query other tables.';
  if (code === '57014') return 'The query ran too long. Narrow it (WHERE, LIMIT) and try again.';
  if (code && code.startsWith('42')) return 'The SQL is not valid for this database. Fix the query and try again.';
  return 'Report this error to a human if retrying does not help.';
}

/**
 * @param {{ sql: string }} input from the model
 * @param {{ connection: object, getToken: () => Promise<string>, maxRows?: number, statementTimeoutMs?: number }} ctx
 */
async function runReadOnlySql(input, ctx) {
  const sql = typeof input?.sql === 'string' ? input.sql.trim() : '';
  if (!sql) return { ok: false, error: 'no SQL given', code: null, advice: 'Pass {"sql": "select ..."}.' };
  const maxRows = ctx.maxRows ?? 100;
  const client = new Client({ ...ctx.connection, password: ctx.getToken, application_name: 'llm-tool run_readonly_sql' });
  client.on('error', () => undefined); // a session the gateway ends surfaces through the query below
  try {
    await client.connect();
    await client.query('BEGIN READ ONLY');
    await client.query(`SET LOCAL statement_timeout = ${Number(ctx.statementTimeoutMs ?? 10_000)}`);
    const res = await client.query({ text: sql, rowMode: 'array' });
    await client.query('ROLLBACK');
    return {
      ok: true,
      columns: res.fields.map((f) => f.name),
      rows: res.rows.slice(0, maxRows),
      rowCount: res.rows.length,
      truncated: res.rows.length > maxRows,
    };
  } catch (err) {
    return { ok: false, error: err.message, code: err.code ?? null, advice: adviceFor(err.code) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

module.exports = { TOOL, runReadOnlySql, adviceFor };

if (require.main === module) {
  const tokens = tokenSourceFromEnv();
  const connection = {
    host: process.env.PGHOST ?? '127.0.0.1',
    port: Number(process.env.PGPORT ?? 6432),
    user: process.env.PGUSER ?? 'reader',
    database: process.env.PGDATABASE ?? 'app',
    ssl: sslFromEnv(),
  };
  runReadOnlySql({ sql: process.argv.slice(2).join(' ') }, { connection, getToken: () => tokens.token() }).then((result) => {
    console.log(JSON.stringify(result, null, 2));
    process.exitCode = result.ok ? 0 : 1;
  });
}
