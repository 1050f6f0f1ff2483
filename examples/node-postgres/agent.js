#!/usr/bin/env node
'use strict';
/**
 * An agent that reaches PostgreSQL through tokengate with node-postgres. It never holds a
 * database password: each new connection asks the token source for the current access token,
 * and the pool retires connections long before that token could expire.
 *
 *   OIDC_ISSUER=https://acme.okta.com/oauth2/default OIDC_CLIENT_ID=0oa... \
 *   OIDC_CLIENT_SECRET_FILE=~/.config/agent/secret \
 *   PGHOST=tokengate.internal PGPORT=6432 PGUSER=reader PGDATABASE=app PGSSLROOTCERT=/etc/ssl/corp-ca.pem \
 *   node examples/node-postgres/agent.js "select count(*) from orders"
 *
 * PGUSER is the role granted to the agent, PGDATABASE the database alias (see docs/grants.md).
 */
const { Pool } = require('pg');
const { tokenSourceFromEnv, sslFromEnv } = require('./token-source');

function createPool(tokens, env = process.env) {
  const pool = new Pool({
    host: env.PGHOST ?? '127.0.0.1',
    port: Number(env.PGPORT ?? 6432),
    user: env.PGUSER ?? 'reader',
    database: env.PGDATABASE ?? 'app',
    ssl: sslFromEnv(env),
    // Called for every new connection: the token goes where the password would.
    password: () => tokens.token(),
    max: 4,
    idleTimeoutMillis: 30_000,
    // Tokens are fetched with >= 120 s left; retiring connections after 60 s means an idle
    // connection never outlives its token (tokengate ends a session when its token expires).
    maxLifetimeSeconds: 60,
  });
  // An idle connection that the gateway closes (expiry, restart) must not crash the agent.
  pool.on('error', (err) => console.error(`pool: an idle connection ended: ${err.message}`));
  return pool;
}

async function main() {
  const queries = process.argv.slice(2);
  if (queries.length === 0) queries.push("select current_user, current_setting('application_name') as application");
  const tokens = tokenSourceFromEnv();
  const pool = createPool(tokens);
  try {
    // Concurrent queries open several connections; they share one token.
    const results = await Promise.all(queries.map((sql) => pool.query(sql)));
    for (const [i, r] of results.entries()) console.log(JSON.stringify({ query: queries[i], rows: r.rows }));
    console.error(`token requests: ${tokens.requests}, connections: ${pool.totalCount}`);
  } finally {
    await pool.end();
  }
}

module.exports = { createPool };

if (require.main === module) {
  main().catch((err) => {
    // The gateway's refusals are written for the agent: what was wrong and what to do.
    console.error(`agent: ${err.message}`);
    process.exit(1);
  });
}
