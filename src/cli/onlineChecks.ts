import type { Config, RoleConfig, UpstreamConfig } from '../config/schema';
import { formatHostPort } from '../config/hostport';
import { DiscoveryError, discoverIssuer } from '../identity/discovery';
import { IssuerKeys } from '../identity/keys';
import { classifyUpstreamFailure } from '../core/upstreamFailure';
import { connectPgUpstream } from '../postgres/login';
import { connectMysqlUpstream } from '../mysql/login';
import { log } from '../log';
import { checkRedis } from '../core/state/redis/onlineCheck';

/**
 * What `check-config --online` and `start` check against the outside world: a login to every
 * upstream role on every database, with the gateway's own login code, and the issuer's
 * discovery document and signing keys. Each failure says whether it is a configuration error
 * (retrying will not fix it) or the peer is unreachable or unavailable (it may come back).
 */

export type CheckProblem = 'configuration' | 'unreachable';

export interface CheckResult {
  /** What was checked, e.g. "upstream app-pg role reader database app" or "issuer keys". */
  name: string;
  ok: boolean;
  /** On failure: whether fixing the config is needed (configuration) or the peer may come back (unreachable). */
  problem?: CheckProblem;
  /** On success what was found; on failure the cause (the server's own error, the failing URL). Never a secret. */
  detail: string;
}

/** At most this many logins at once, so a check does not flood a server with connections. */
const MAX_PARALLEL_LOGINS = 4;
/** utf8mb4_general_ci: understood by every MySQL >= 5.5 and MariaDB. */
const MYSQL_CHARSET = 45;

/**
 * The gateway's own classification (as agents are told): a login the server refused for the
 * configuration's sake (wrong password, unknown role or database, no privilege) is a
 * configuration error; no answer (refused connection, DNS, timeout) or a busy server is
 * "unreachable".
 */
export function classifyLoginFailure(err: unknown): CheckProblem {
  return classifyUpstreamFailure(err) === 'login_refused' ? 'configuration' : 'unreachable';
}

async function loginCheck(upstream: UpstreamConfig, role: RoleConfig, alias: string): Promise<CheckResult> {
  const database = upstream.databases[alias];
  const name = `upstream ${upstream.name} role ${role.name} database ${alias}`;
  const where = `${role.user}@${formatHostPort(upstream)}/${database}`;
  const common = {
    host: upstream.host, port: upstream.port, tls: upstream.tls, caFile: upstream.caFile,
    user: role.user, password: role.password, database, connectTimeoutMs: upstream.pool.acquireTimeoutMs,
  };
  try {
    if (upstream.protocol === 'postgres') {
      const conn = await connectPgUpstream({ ...common, parameters: { application_name: 'tokengate check' } });
      const version = conn.parameters.get('server_version');
      conn.close();
      return { name, ok: true, detail: `logged in as ${where}${version ? ` (PostgreSQL ${version})` : ''}` };
    }
    const conn = await connectMysqlUpstream({ ...common, capabilities: 0, characterSet: MYSQL_CHARSET, connectAttributes: { program_name: 'tokengate check' } });
    const version = conn.serverVersion;
    conn.close();
    return { name, ok: true, detail: `logged in as ${where} (${version})` };
  } catch (err) {
    return { name, ok: false, problem: classifyLoginFailure(err), detail: (err as Error).message };
  }
}

/** Runs `tasks` with at most `limit` in flight; results in the order of `tasks`. */
async function bounded<T>(tasks: Array<() => Promise<T>>, limit: number): Promise<T[]> {
  const results = new Array<T>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

async function issuerChecks(config: Config): Promise<CheckResult[]> {
  const { oidc } = config;
  const results: CheckResult[] = [];
  let discoveryFailed: CheckProblem | undefined;
  try {
    const meta = await discoverIssuer(oidc.issuer, oidc.fetchTimeoutMs);
    results.push({ name: 'issuer discovery', ok: true, detail: `${meta.source} names issuer ${meta.issuer} and keys at ${meta.jwksUri}` });
  } catch (err) {
    discoveryFailed = err instanceof DiscoveryError && !err.unreachable ? 'configuration' : 'unreachable';
    results.push({ name: 'issuer discovery', ok: false, problem: discoveryFailed, detail: (err as Error).message });
  }
  if (discoveryFailed && !oidc.jwksUri) {
    results.push({ name: 'issuer keys', ok: false, problem: discoveryFailed, detail: 'not fetched: the keys URL comes from the discovery document (or set oidc.jwksUri)' });
    return results;
  }
  let keys: IssuerKeys;
  try {
    keys = new IssuerKeys(oidc);
  } catch (err) {
    results.push({ name: 'issuer keys', ok: false, problem: 'configuration', detail: (err as Error).message });
    return results;
  }
  await keys.prefetch();
  results.push(keys.lastFailure === undefined
    ? { name: 'issuer keys', ok: true, detail: `fetched from ${keys.jwksUri}` }
    : { name: 'issuer keys', ok: false, problem: 'unreachable', detail: `${keys.jwksUri ?? 'the JWKS'}: ${keys.lastFailure}` });
  return results;
}

export async function runOnlineChecks(config: Config): Promise<CheckResult[]> {
  const logins = Object.values(config.upstreams).flatMap((up) =>
    Object.values(up.roles).flatMap((role) => Object.keys(up.databases).map((alias) => () => loginCheck(up, role, alias))));
  const [upstreams, issuer, redis] = await Promise.all([bounded(logins, MAX_PARALLEL_LOGINS), issuerChecks(config), config.redis ? checkRedis(config.redis) : undefined]);
  return [...upstreams, ...issuer, ...(redis ? [redis] : [])];
}

const PROBLEM_TEXT: Record<CheckProblem, string> = {
  configuration: 'configuration error (retrying will not fix it)',
  unreachable: 'unreachable or unavailable',
};

/** One line per result: "ok    name: detail" / "FAIL  name: <problem>: detail". */
export function formatCheckResults(results: CheckResult[]): string {
  const lines = results.map((r) => (r.ok ? `  ok    ${r.name}: ${r.detail}` : `  FAIL  ${r.name}: ${PROBLEM_TEXT[r.problem ?? 'unreachable']}: ${r.detail}`));
  const failed = results.filter((r) => !r.ok).length;
  const summary = failed === 0 ? `all ${results.length} checks passed` : `${failed} of ${results.length} checks failed`;
  return `Online checks:\n${lines.join('\n')}\n${summary}\n`;
}

/** For `start`: each failed check as a warning on the operational log (the gateway starts anyway). */
export function logCheckFailures(results: CheckResult[]): void {
  for (const r of results.filter((x) => !x.ok)) log.warn(`startup check failed: ${r.name}: ${PROBLEM_TEXT[r.problem ?? 'unreachable']}: ${r.detail}`);
}
