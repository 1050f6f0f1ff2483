import type { Config } from '../config/schema';
import type { Identity } from '../identity/types';
import { allowedAccess, decide, type Decision } from '../grants/decide';
import { ErrorCode, type ErrorCodeDef } from '../../protocols/mysql/constants';

/**
 * Where a MySQL session goes, built on the one access decision (grants/decide): the
 * handshake user is the role, the handshake database (or a later USE) is an alias among
 * the `protocol: mysql` upstreams.
 */

export type Granted = Extract<Decision, { ok: true }>;

export interface Refusal {
  ok: false;
  /** Stable audit reason (decide's denial reasons, plus the MySQL-specific ones). */
  reason: string;
  error: ErrorCodeDef;
  message: string;
}

export type LoginRoute =
  | Granted
  /** No database named and several are possible: the session starts without an upstream until USE. */
  | { ok: true; deferred: true; choices: string[] }
  | Refusal;

const MAX_LISTED = 20;

function listed(items: string[]): string {
  const head = items.slice(0, MAX_LISTED).join(', ');
  return items.length > MAX_LISTED ? `${head}, ... (+${items.length - MAX_LISTED} more)` : head;
}

/** The database aliases `identity` may use as `role` over MySQL (each alias at most once). */
export function mysqlAliasesFor(config: Config, identity: Identity, role: string): { upstream: string; alias: string }[] {
  const seen = new Set<string>();
  const out: { upstream: string; alias: string }[] = [];
  for (const a of allowedAccess(config, identity, 'mysql')) {
    if (!a.roles.includes(role)) continue;
    for (const alias of a.databases) {
      if (seen.has(alias)) continue;
      seen.add(alias);
      out.push({ upstream: a.upstream, alias });
    }
  }
  return out;
}

/** At login. `database` is what the client named (undefined or '' when none). */
export function routeLogin(config: Config, identity: Identity, role: string, database: string | undefined): LoginRoute {
  if (database) {
    const d = decide(config, identity, 'mysql', database, role);
    if (d.ok) return d;
    return {
      ok: false,
      reason: d.reason,
      error: d.reason === 'unknown_database' ? ErrorCode.UNKNOWN_DATABASE : d.reason === 'database_not_granted' ? ErrorCode.DB_ACCESS_DENIED : ErrorCode.ACCESS_DENIED,
      message: d.message,
    };
  }
  const choices = mysqlAliasesFor(config, identity, role);
  if (choices.length === 1) {
    const d = decide(config, identity, 'mysql', choices[0].alias, role);
    if (d.ok) return d;
  }
  if (choices.length > 0) return { ok: true, deferred: true, choices: choices.map((c) => c.alias) };
  // Not granted anywhere as this role: say what is.
  const access = allowedAccess(config, identity, 'mysql');
  if (access.length === 0) {
    return {
      ok: false,
      reason: 'no_matching_grant',
      error: ErrorCode.ACCESS_DENIED,
      message: 'no grant gives your token access to a MySQL database on this gateway; ask a DBA to add a grant for one of your groups or your client id',
    };
  }
  const roles = [...new Set(access.flatMap((a) => a.roles))];
  return {
    ok: false,
    reason: 'role_not_granted',
    error: ErrorCode.ACCESS_DENIED,
    message: `role "${role.slice(0, 120)}" is not granted to you on any MySQL database; your grants allow: ${listed(roles)} (the user name is the role)`,
  };
}

/**
 * USE / COM_INIT_DB. Allowed only for an alias granted to this identity and role on the
 * upstream the session already uses (any upstream while the session has none yet).
 */
export function routeUse(config: Config, identity: Identity, role: string, alias: string, currentUpstream: string | undefined): Granted | Refusal {
  const d = decide(config, identity, 'mysql', alias, role);
  if (!d.ok) {
    const unknown = d.reason === 'unknown_database';
    return { ok: false, reason: d.reason, error: unknown ? ErrorCode.UNKNOWN_DATABASE : ErrorCode.DB_ACCESS_DENIED, message: d.message };
  }
  if (currentUpstream !== undefined && d.upstream.name !== currentUpstream) {
    const here = mysqlAliasesFor(config, identity, role).filter((c) => c.upstream === currentUpstream).map((c) => c.alias);
    return {
      ok: false,
      reason: 'other_upstream',
      error: ErrorCode.DB_ACCESS_DENIED,
      message: `database "${alias}" is on a different server than this session's; open a new connection with database "${alias}"` +
        (here.length ? ` (USE works here for: ${listed(here)})` : ''),
    };
  }
  return d;
}

/** The text that tells an agent how to pick a database, for sessions that have none yet. */
export function pickDatabaseHint(choices: string[]): string {
  return `your grants allow databases: ${listed(choices)}; send USE <database> first, or connect with a database (mariadb -D <database>, mysql2 { database }, PyMySQL database=)`;
}
