/**
 * Why the gateway could not get an upstream connection, in the terms an operator and an agent
 * act on: the upstream refused the gateway's own login (a wrong password, an unknown role or
 * user, an unknown database: a configuration error that retrying will not fix), or it could not
 * be reached or was overloaded (retry later).
 */
export type UpstreamFailureKind = 'login_refused' | 'unavailable';

/**
 * Server answers to a login that are about the gateway's configuration: PostgreSQL 28P01
 * (password), 28000 (role, pg_hba.conf), 3D000 (database), 42501 (no CONNECT privilege);
 * MySQL/MariaDB 1045 (access denied), 1044 (database access denied), 1049 (unknown database),
 * 1698 (access denied without password).
 */
const REFUSED_SQLSTATES = new Set(['28P01', '28000', '3D000', '42501']);
const REFUSED_MYSQL_CODES = new Set([1044, 1045, 1049, 1698]);

export function classifyUpstreamFailure(err: unknown): UpstreamFailureKind {
  const e = err as { sqlState?: unknown; code?: unknown } | null;
  if (typeof e?.code === 'number') return REFUSED_MYSQL_CODES.has(e.code) ? 'login_refused' : 'unavailable';
  if (typeof e?.sqlState === 'string' && REFUSED_SQLSTATES.has(e.sqlState)) return 'login_refused';
  return 'unavailable';
}
