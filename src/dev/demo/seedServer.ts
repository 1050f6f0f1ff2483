import { randomBytes } from 'node:crypto';
import { Secret } from '../../config/secret';
import { connectMysqlUpstream } from '../../mysql/login';
import { connectPgUpstream } from '../../postgres/login';
import { mysqlSampleSql, postgresSampleSql, SAMPLE_TABLES } from './seed';
import type { ServerTarget } from './serverUrl';

/**
 * The sample tables on a real server (`tokengate demo --postgres URL` / `--mysql URL`), so the
 * commands the demo prints run there too. They go in a schema of their own (on MySQL a database
 * of its own), marked as the demo's: a schema of that name that the demo did not create is never
 * touched, and one it did create is replaced, so every start begins with the same rows. The
 * schema is left in place when the demo stops; the banner says how to remove it.
 */
export const DEFAULT_DEMO_SCHEMA = 'tokengate_demo';

/** PostgreSQL: the schema's comment. MySQL (no comments on databases): a one-row table. */
const MARKER = 'created by tokengate demo; safe to drop';
const MYSQL_MARKER_TABLE = 'created_by_tokengate_demo';

const TIMEOUT_MS = 15_000;
const MYSQL_UTF8MB4 = 45;

/** What was made, for the banner. */
export interface SeededSchema {
  schema: string;
  tables: readonly string[];
  /** A command that removes it all. */
  remove: string;
}

/** The demo cannot use the server as asked; the message says why and what to do. */
export class SeedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SeedError';
  }
}

/** Lower-case identifiers only: they are used unquoted in the printed SQL. */
export function checkSchemaName(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new SeedError(`--schema ${JSON.stringify(name)}: use lower-case letters, digits and _ (at most 63, not starting with a digit), e.g. ${DEFAULT_DEMO_SCHEMA}`);
  }
  return name;
}

const notOurs = (what: string, name: string, where: string): SeedError =>
  new SeedError(`${what} ${name} already exists on ${where} and was not created by the demo, so the demo leaves it alone; pass --schema with another name`);

export async function seedPostgres(t: ServerTarget, schema: string): Promise<SeededSchema> {
  let conn;
  try {
    conn = await connectPgUpstream({
      host: t.host, port: t.port, tls: t.tls, user: t.user, password: new Secret(t.password, 'demo'), database: t.database,
      parameters: { application_name: 'tokengate demo' }, connectTimeoutMs: TIMEOUT_MS,
    });
  } catch (err) {
    throw new SeedError(`cannot use ${t.display} as the demo database: ${(err as Error).message}`);
  }
  try {
    const existing = await conn.query(`SELECT coalesce(obj_description(oid, 'pg_namespace'), '') FROM pg_namespace WHERE nspname = '${schema}'`, TIMEOUT_MS);
    if (existing.error) throw new SeedError(`cannot look for schema ${schema} on ${t.display}: ${existing.error.message}`);
    if (existing.rows.length > 0 && existing.rows[0][0] !== MARKER) throw notOurs('schema', schema, t.display);
    const statements = [
      ...(existing.rows.length > 0 ? [`DROP SCHEMA ${schema} CASCADE`] : []),
      `CREATE SCHEMA ${schema}`,
      `COMMENT ON SCHEMA ${schema} IS '${MARKER}'`,
      ...postgresSampleSql(`${schema}.`),
    ];
    // One simple Query: one implicit transaction, so a failure leaves nothing half made.
    const made = await conn.query(statements.join(';\n'), TIMEOUT_MS);
    if (made.error) {
      throw new SeedError(`cannot create the demo's schema ${schema} on ${t.display}: ${made.error.message}` +
        (made.error.code === '42501' ? `; let the URL's user create schemas there (GRANT CREATE ON DATABASE ${t.database} TO ${t.user}), or use another account` : ''));
    }
  } finally {
    conn.close();
  }
  return { schema, tables: SAMPLE_TABLES, remove: `psql ${shellQuote(t.display)} -c 'DROP SCHEMA ${schema} CASCADE'` };
}

export async function seedMysql(t: ServerTarget, schema: string): Promise<SeededSchema> {
  let conn;
  try {
    conn = await connectMysqlUpstream({
      host: t.host, port: t.port, tls: t.tls, user: t.user, password: new Secret(t.password, 'demo'), database: '',
      capabilities: 0, characterSet: MYSQL_UTF8MB4, connectTimeoutMs: TIMEOUT_MS, connectAttributes: { program_name: 'tokengate demo' },
    });
  } catch (err) {
    throw new SeedError(`cannot use ${t.display} for the demo: ${(err as Error).message}`);
  }
  const run = async (sql: string): Promise<(string | null)[][]> => {
    const r = await conn.query(sql, TIMEOUT_MS);
    if (r.error) {
      const hint = r.error.code === 1044 || r.error.code === 1142
        ? `; give the account the demo's database (as root: GRANT ALL ON \`${schema}\`.* TO '${t.user}'@'%';), or use another account`
        : '';
      throw new SeedError(`cannot create the demo's database ${schema} on ${t.display}: ERROR ${r.error.code}: ${r.error.message}${hint}`);
    }
    return r.rows ?? [];
  };
  try {
    const exists = await run(`SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '${schema}'`);
    if (exists[0]?.[0] !== '0') {
      const marked = await run(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '${schema}' AND table_name = '${MYSQL_MARKER_TABLE}'`);
      if (marked[0]?.[0] === '0') throw notOurs('database', schema, t.display);
      await run(`DROP DATABASE \`${schema}\``);
    }
    await run(`CREATE DATABASE \`${schema}\` CHARACTER SET utf8mb4`);
    await run(`CREATE TABLE \`${schema}\`.${MYSQL_MARKER_TABLE} (note VARCHAR(100)) CHARACTER SET utf8mb4`);
    await run(`INSERT INTO \`${schema}\`.${MYSQL_MARKER_TABLE} VALUES ('${MARKER}')`);
    for (const sql of mysqlSampleSql(`\`${schema}\``)) await run(sql);
  } finally {
    conn.close();
  }
  return { schema, tables: SAMPLE_TABLES, remove: `mariadb -h ${t.host} -P ${t.port} -u ${t.user} -p -e 'DROP DATABASE ${schema}'` };
}

/**
 * The --mysql refusal for an account without a password (tokengate logs in to MySQL with one):
 * the two statements that make a suitable account, and the URL to pass then.
 */
export function mysqlAccountHelp(t: ServerTarget, schema: string): string {
  const password = `demo-${randomBytes(9).toString('base64url')}`;
  return [
    `--mysql URL needs a password: tokengate logs in to MySQL with one, so an account without a password (${t.user}) cannot be used.`,
    `Create an account for the demo, e.g. with sudo mariadb (it may use only the demo's own database ${schema}):`,
    `  CREATE USER '${schema}'@'%' IDENTIFIED BY '${password}';`,
    `  GRANT ALL ON \`${schema}\`.* TO '${schema}'@'%';`,
    `then: npx tokengate demo --mysql mysql://${schema}:${password}@${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}/${schema}`,
  ].join('\n');
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
