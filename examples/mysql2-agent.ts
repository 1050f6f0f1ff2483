/**
 * An agent that talks to MySQL/MariaDB through tokengate with mysql2.
 *
 *   npx tsc --outDir .tmp/examples --module commonjs --target es2022 --esModuleInterop --skipLibCheck examples/mysql2-agent.ts
 *   TOKENGATE_TOKEN="$(your-okta-client-credentials-flow)" \
 *   TOKENGATE_HOST=127.0.0.1 TOKENGATE_MYSQL_PORT=6033 TOKENGATE_ROLE=reader TOKENGATE_DATABASE=app \
 *   node .tmp/examples/mysql2-agent.js
 *
 * (tsc comes with the clone's devDependencies; any TypeScript runner, e.g. npx tsx, works too.
 * With `npx tokengate demo --mysql URL` running: TOKENGATE_TOKEN="$(npx tokengate token --demo)"
 * and the MySQL port the demo prints.)
 *
 * Two mysql2 settings matter:
 * - enableCleartextPlugin: true. tokengate asks for the password with mysql_clear_password (it
 *   needs the token itself, not a hash of it). Without the flag mysql2 refuses with
 *   MYSQL_CLEAR_PASSWORD_NOT_ENABLED ("Server requested authentication using mysql_clear_password ...").
 * - ssl: always, except to a gateway on the same machine. The token is a bearer credential.
 */
import fs from 'node:fs';
import mysql from 'mysql2/promise';

export interface AgentOptions {
  host: string;
  port: number;
  /** The role you were granted (not a database user). */
  role: string;
  /** A database alias from the gateway config. */
  database: string;
  /** An Okta access token. */
  token: string;
  /** PEM file of the CA that signed the gateway's certificate; TLS is off without it. */
  caFile?: string;
}

export interface AgentReport {
  upstreamUser: string;
  tls: boolean;
  threadId: number;
  items: { id: number; name: string }[];
}

export async function runAgent(o: AgentOptions): Promise<AgentReport> {
  const conn = await mysql.createConnection({
    host: o.host,
    port: o.port,
    user: o.role,
    database: o.database,
    password: o.token,
    enableCleartextPlugin: true,
    ssl: o.caFile ? { ca: fs.readFileSync(o.caFile), rejectUnauthorized: true } : undefined,
  });
  try {
    const [who] = await conn.query<mysql.RowDataPacket[]>('SELECT CURRENT_USER() AS u');
    // A prepared statement (binary protocol): the gateway audits it with its SQL text.
    const [items] = await conn.execute<mysql.RowDataPacket[]>('SELECT id, name FROM items WHERE id <= ? ORDER BY id', [3]);
    return {
      upstreamUser: String(who[0].u).split('@')[0],
      tls: Boolean(o.caFile),
      // tokengate's connection id: what KILL QUERY <id> from another connection of yours takes.
      threadId: conn.threadId,
      items: items.map((r) => ({ id: Number(r.id), name: String(r.name) })),
    };
  } finally {
    await conn.end();
  }
}

if (require.main === module) {
  const env = (name: string, fallback?: string): string => {
    const v = process.env[name] ?? fallback;
    if (v === undefined) throw new Error(`set ${name}`);
    return v;
  };
  runAgent({
    host: env('TOKENGATE_HOST', '127.0.0.1'),
    port: Number(env('TOKENGATE_MYSQL_PORT', '6033')),
    role: env('TOKENGATE_ROLE', 'reader'),
    database: env('TOKENGATE_DATABASE', 'app'),
    token: env('TOKENGATE_TOKEN'),
    caFile: process.env.TOKENGATE_CA_FILE,
  }).then(
    (r) => console.log(JSON.stringify(r, null, 2)),
    (err: Error & { code?: string }) => {
      console.error(`${err.code ?? 'error'}: ${err.message}`);
      process.exitCode = 1;
    },
  );
}
