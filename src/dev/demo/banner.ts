import type { SeededSchema } from './seedServer';
import type { DemoState } from './stateFile';

/**
 * What `tokengate demo` prints: where everything runs, then commands to paste into another
 * terminal. Every command here is run as printed by test/demo/demo*.test.ts.
 */
export interface BannerInput {
  state: DemoState;
  /** The directory to run the commands in (npx tokengate and require('pg') resolve from it). */
  projectDir: string;
  /** Embedded PGlite (sample tables in public) or a real server (sample tables in the demo's schema). */
  embedded: boolean;
  /** What the demo created on real servers (--postgres, --mysql). */
  made: { postgres?: SeededSchema; mysql?: SeededSchema };
  /** Shown under the gateway line, e.g. when a requested port was taken and another was used. */
  notes: string[];
}

/** Single-quote for POSIX shells. */
const sh = (s: string): string => (/^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** "127.0.0.1:6432" -> ["127.0.0.1", "6432"] */
function splitHostPort(hp: string): [string, string] {
  const cut = hp.lastIndexOf(':');
  return [hp.slice(0, cut), hp.slice(cut + 1)];
}

/** The MySQL listener: the same token as the password, with the mariadb client. */
function mysqlLines(state: DemoState, mysql: string, token: (client: string) => string): string[] {
  const [host, port] = splitHostPort(mysql);
  const [reporting] = state.clients;
  return [
    `  # 5. MySQL: the same token as the password, with the mariadb client (MYSQL_PWD, not -p: the prompt cuts at 79 characters)`,
    `  MYSQL_PWD=${token(reporting.clientId)} mariadb -h ${host} -P ${port} -u ${reporting.role} -D ${state.database} -e "select current_user(), database(); select id, name from items order by id limit 3"`,
    '',
  ];
}

export function demoBanner(b: BannerInput): string {
  const { state } = b;
  const [host, port] = splitHostPort(state.postgres);
  const conninfo = (role: string): string => `"host=${host} port=${port} user=${role} dbname=${state.database} sslmode=prefer"`;
  const token = (client: string, extra = ''): string => `"$(npx tokengate token --demo --client ${client}${extra})"`;
  // On a real server the tables are in the demo's own schema, named in full (search_path is the server's).
  const tables = b.made.postgres ? `${b.made.postgres.schema}.` : '';
  const readQuery = `select id, customer_id, total, status from ${tables}orders order by id`;
  const [reporting, billing] = state.clients;
  const clientLines = state.clients.map((c) => `${c.clientId.padEnd(14)} groups [${c.groups.join(', ')}] -> role ${c.role}${c.privateKeyFile ? ` (private_key_jwt, key ${c.privateKeyFile})` : ''}`);
  const keyClient = state.clients.find((c) => c.privateKeyFile !== undefined);
  const nodeSql = `insert into ${tables}orders (customer_id, total) values (2, 42.50) returning id`;
  const madeLines = (['postgres', 'mysql'] as const).flatMap((p) => {
    const m = b.made[p];
    if (!m) return [];
    const where = p === 'postgres' ? `schema ${m.schema} in ${state.upstream}` : `database ${m.schema} on ${state.mysqlUpstream?.replace(/\/[^/]*$/, '')}`;
    return [`  created   ${where}: tables ${m.tables.join(', ')} (replaced at the next start; kept after Ctrl-C)`, `            remove it with: ${m.remove}`];
  });
  const lines = [
    '',
    'tokengate demo is running; Ctrl-C stops it.',
    '',
    `  issuer    ${state.issuer}  (development issuer, 5-minute RS256 tokens)`,
    `  database  ${b.embedded ? 'embedded PGlite: tables customers, orders and items; roles demo_reader, demo_writer' : state.upstream}`,
    `  gateway   postgres ${state.postgres}${state.mysql ? `, mysql ${state.mysql}` : ''}; database alias "${state.database}", roles reader and writer`,
    ...(state.mysqlUpstream ? [`  mysql     ${state.mysqlUpstream}`] : []),
    ...b.notes.map((n) => `            (${n})`),
    `  clients   ${clientLines.join(`\n            `)}`,
    `  config    ${state.configFile}`,
    ...madeLines,
    ...(b.embedded ? [
      '  note      PGlite runs every session as one superuser: the gateway decides and audits who',
      '            gets which role, but per-role SQL privileges need a real server (--postgres URL).',
      '            PGlite also cannot cancel a running query (Ctrl-C in psql) or deliver LISTEN/NOTIFY;',
      '            run the demo with --postgres URL to see those through the gateway.',
    ] : []),
    '',
    'Try it from another terminal:',
    '',
    `  cd ${sh(b.projectDir)}`,
    '',
    `  # 1. ${reporting.clientId} gets a token and queries through the gateway with psql`,
    `  export PGPASSWORD=${token(reporting.clientId)}`,
    `  psql ${conninfo(reporting.role)} -c "${readQuery}"`,
    '',
    `  # 2. ${billing.clientId} does the same from node-postgres, with its ${billing.role} role`,
    `  PGPASSWORD=${token(billing.clientId)} node -e '`,
    `    const { Client } = require("pg");`,
    `    const c = new Client({ host: "${host}", port: ${port}, user: "${billing.role}", database: "${state.database}" });`,
    `    c.connect().then(() => c.query("${nodeSql}"))`,
    `      .then((r) => { console.log(r.rows); return c.end(); })`,
    `      .catch((e) => { console.error(e.message); process.exit(1); });'`,
    '',
    '  # 3. refused: an expired token, then a role the grant does not give',
    `  PGPASSWORD=${token(reporting.clientId, ' --expired')} psql ${conninfo(reporting.role)} -c "select 1"`,
    `  PGPASSWORD=${token(reporting.clientId)} psql ${conninfo(billing.role)} -c "select 1"`,
    '',
    ...(keyClient ? [
      `  # 4. ${keyClient.clientId} signs a client assertion with its private key (private_key_jwt: no shared secret), as docs/okta.md sets up with Okta`,
      `  PGPASSWORD="$(npx tokengate token --issuer ${state.issuer} --client-id ${keyClient.clientId} --private-key ${sh(keyClient.privateKeyFile!)} --key-id ${keyClient.keyId} --scope db.connect)" psql ${conninfo(keyClient.role)} -c "select current_user"`,
      '',
    ] : []),
    ...(state.mysql ? mysqlLines(state, state.mysql, token) : []),
    'The audit log (JSON lines: who connected, which grant, each query, refusals) follows here.',
    '',
  ];
  return lines.join('\n');
}
