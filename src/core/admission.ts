import type { Config, Protocol, RoleConfig, UpstreamConfig } from '../config/schema';
import { decide, type Decision } from '../grants/decide';
import { TokenRejectedError, type Identity } from '../identity/types';
import { troubleLog } from '../throttledLog';
import type { Clock } from './clock';
import { PoolClosedError, PoolExhaustedError, type Pool, type UpstreamConnection } from './pool';
import { SharedStateUnavailableError, type ConnectionLeases, type Lease, type LeaseResult } from './state/connectionLeases';
import type { Revocation, RevocationStore } from './state/revocations';
import { classifyUpstreamFailure } from './upstreamFailure';

/**
 * The one admission path of both protocols: verify the token, check revocations, decide the
 * grant, take the connection leases, acquire the upstream. Each step returns a value or a
 * refusal that says what went wrong in terms the agent can act on; the protocol turns the
 * refusal's kind into its own error code.
 */

/** What kind of refusal: each protocol maps these to its error codes. */
export type RefusalKind =
  | 'token'
  | 'revoked'
  | 'unknown_database'
  | 'database_not_granted'
  | 'not_granted'
  /** limits.maxClientConnections: the whole gateway is full. */
  | 'client_limit'
  /** limits.maxConnectionsPerIdentity: this subject has its most sessions open. */
  | 'identity_limit'
  /** A grant's maxConnections. */
  | 'limit'
  | 'pool_exhausted'
  | 'upstream_unavailable'
  /** The upstream refused the gateway's own login: its config is wrong, retrying will not help. */
  | 'upstream_login_refused';

export interface Refusal {
  ok: false;
  kind: RefusalKind;
  /** Stable audit reason (expired, role_not_granted, revoked, pool_exhausted...). */
  reason: string;
  /** For the agent. Never contains a token or secret. */
  message: string;
  /** For the audit record only (an upstream's own error text, say). */
  detail?: string;
}

export type Admitted<T> = { ok: true; value: T } | Refusal;

export type Granted = Extract<Decision, { ok: true }>;

/** Verifies tokens: the current TokenVerifier (rebuilt when the issuer settings change). */
export interface TokenVerification {
  verify(token: string): Promise<Identity>;
}

export interface AdmissionDeps {
  config: () => Config;
  verifier: () => TokenVerification;
  revocations: RevocationStore;
  leases: ConnectionLeases;
  clock: Clock;
  /** False while new sessions must be refused because the audit log cannot be written (audit.onFailure: refuse). */
  auditWritable?: () => boolean;
  /** Told how long each pool acquire took, handed out or not (metrics). */
  onAcquire?: (protocol: Protocol, upstream: string, role: string, seconds: number) => void;
  /** Why new sessions are refused while the shared state (Redis) is unavailable (redis.onUnavailable: fail-closed); undefined while they are not. */
  sharedStateRefusal?: () => string | undefined;
}

const refuse = (kind: RefusalKind, reason: string, message: string, detail?: string): Refusal => ({ ok: false, kind, reason, message, detail });

export class Admission {
  constructor(private readonly deps: AdmissionDeps) {}

  /** The token's identity, unless the token is invalid or an operator revoked it. Checked on every login, cached token or not. */
  async identify(token: string): Promise<Admitted<Identity>> {
    if (this.deps.auditWritable && !this.deps.auditWritable()) {
      return refuse('upstream_unavailable', 'audit_unavailable',
        'tokengate cannot write its audit log, so it accepts no new sessions until an operator fixes it; retry in a few minutes');
    }
    const unshared = this.deps.sharedStateRefusal?.();
    if (unshared !== undefined) return refuse('upstream_unavailable', 'shared_state_unavailable', unshared);
    let identity: Identity;
    try {
      identity = await this.deps.verifier().verify(token);
    } catch (err) {
      if (err instanceof TokenRejectedError) return refuse('token', err.reason, err.message);
      throw err;
    }
    const revoked = this.deps.revocations.blocking(identity, this.deps.clock.now());
    if (revoked) return refuse('revoked', 'revoked', revokedMessage(revoked));
    return { ok: true, value: identity };
  }

  /** The grant for `role` on the database `alias` over `protocol`, from the current config. */
  decide(identity: Identity, protocol: Protocol, alias: string, role: string): Admitted<Granted> {
    const d = decide(this.deps.config(), identity, protocol, alias, role);
    if (d.ok) return { ok: true, value: d };
    return refuse(d.reason === 'unknown_database' ? 'unknown_database' : d.reason === 'database_not_granted' ? 'database_not_granted' : 'not_granted', d.reason, d.message);
  }

  /**
   * Counts a client connection against limits.maxClientConnections, from the moment it is
   * accepted (handshakes included, as pgbouncer's max_client_conn counts every client).
   */
  admitClient(): Admitted<Lease> | Promise<Admitted<Lease>> {
    const limit = this.deps.config().limits.maxClientConnections ?? Infinity;
    return settle(() => this.deps.leases.acquire([{ key: CLIENTS_KEY, limit }]), (r) => refuse('client_limit', 'client_connection_limit',
      `tokengate has reached its limit of ${r.limit} client connections (limits.maxClientConnections); retry in a moment, and if it persists tell the operator`));
  }

  /** Counts the session under its identity and, once known, its grant, within their caps (limits.maxConnectionsPerIdentity, the grant's maxConnections). */
  async lease(identity: Identity, grant: string | undefined): Promise<Admitted<Lease>> {
    const config = this.deps.config();
    const requests = [
      { key: `identity:${identity.sub}`, limit: config.limits.maxConnectionsPerIdentity ?? Infinity },
      ...(grant ? [grantRequest(config, grant)] : []),
    ];
    return settle(() => this.deps.leases.acquire(requests), (r) => {
      if (r.key === requests[0].key) {
        return refuse('identity_limit', 'identity_connection_limit',
          `you already have ${r.count} sessions open through tokengate, the most one identity may have (limits.maxConnectionsPerIdentity is ${r.limit}); close idle sessions and retry`);
      }
      return refuse('limit', 'grant_connection_limit',
        `grant "${grant}" allows at most ${r.limit} sessions at once and all are in use; close idle sessions and retry, or ask the operator to raise its maxConnections`);
    });
  }

  /** Counts a session under a grant it chose after login (a MySQL USE), within the grant's maxConnections. */
  async leaseGrant(grant: string): Promise<Admitted<Lease>> {
    return settle(() => this.deps.leases.acquire([grantRequest(this.deps.config(), grant)]), (r) => refuse('limit', 'grant_connection_limit',
      `grant "${grant}" allows at most ${r.limit} sessions at once and all are in use; close idle sessions and retry, or ask the operator to raise its maxConnections`));
  }

  /**
   * A connection for `role` on `upstream`, from the pool `poolFor` gives for their current
   * settings. A pool taken out of service by a config change while this login waited is asked
   * again once: the upstream and role are looked up anew, so the new pool has the new settings.
   */
  async acquire<T extends UpstreamConnection>(
    upstream: string,
    role: string,
    poolFor: (upstream: UpstreamConfig, role: RoleConfig) => Pool<T>,
  ): Promise<Admitted<{ pool: Pool<T>; conn: T }>> {
    for (let attempt = 0; ; attempt++) {
      const up = this.deps.config().upstreams[upstream];
      const r = up && Object.prototype.hasOwnProperty.call(up.roles, role) ? up.roles[role] : undefined;
      if (!up || !r) {
        return refuse('not_granted', 'upstream_removed', `upstream "${upstream}" or its role "${role}" was removed from the gateway's config while you connected; connect again`);
      }
      const pool = poolFor(up, r);
      const started = this.deps.clock.now();
      try {
        const conn = await pool.acquire();
        this.deps.onAcquire?.(up.protocol, upstream, role, (this.deps.clock.now() - started) / 1000);
        return { ok: true, value: { pool, conn } };
      } catch (err) {
        this.deps.onAcquire?.(up.protocol, upstream, role, (this.deps.clock.now() - started) / 1000);
        if (err instanceof PoolClosedError && attempt === 0) continue;
        if (err instanceof PoolExhaustedError) return refuse('pool_exhausted', 'pool_exhausted', err.message);
        return upstreamFailure(upstream, up.host, up.port, role, err as Error);
      }
    }
  }
}

const CLIENTS_KEY = 'clients';

type Full = Extract<LeaseResult, { ok: false }>;

/** A lease result as an admission answer: synchronous when the leases answered at once (in-process), else a promise. */
function settle(acquire: () => LeaseResult | Promise<LeaseResult>, full: (r: Full) => Refusal): Admitted<Lease> | Promise<Admitted<Lease>> {
  const answer = (r: LeaseResult): Admitted<Lease> => (r.ok ? { ok: true, value: r.lease } : full(r));
  let result: LeaseResult | Promise<LeaseResult>;
  try {
    result = acquire();
  } catch (err) {
    return unavailable(err);
  }
  return result instanceof Promise ? result.then(answer, unavailable) : answer(result);
}

function unavailable(err: unknown): Refusal {
  if (err instanceof SharedStateUnavailableError) return refuse('upstream_unavailable', 'shared_state_unavailable', err.message);
  throw err;
}

function grantRequest(config: Config, grant: string): { key: string; limit: number } {
  return { key: `grant:${grant}`, limit: config.grants.find((g) => g.name === grant)?.maxConnections ?? Infinity };
}

/**
 * A failed upstream login, told apart for the agent (retry, or tell a DBA) and put on the
 * operational log with the upstream's own error, once per upstream, role and cause per window.
 */
function upstreamFailure(upstream: string, host: string, port: number, role: string, err: Error): Refusal {
  const where = `upstream "${upstream}" (${host}:${port}) for role "${role}"`;
  if (classifyUpstreamFailure(err) === 'login_refused') {
    const code = (err as { sqlState?: string; code?: unknown }).sqlState ?? String((err as { code?: unknown }).code);
    troubleLog.report('error', `upstream:${upstream}:${role}:refused:${code}`,
      `${where} refused the gateway's login: ${err.message} This is a configuration error: fix the role's user, password or the database mapping in the config (or the grant on the server), then reload`);
    return refuse('upstream_login_refused', 'upstream_login_refused',
      `${where} refused tokengate's own login: the gateway's credentials or database mapping for this role are misconfigured, so retrying will not help; tell a DBA or the tokengate operator`,
      err.message);
  }
  troubleLog.report('warn', `upstream:${upstream}:unavailable:${err.message.replace(/\d+ ms/g, '')}`,
    `cannot open a connection to ${where}: ${err.message}`);
  return refuse('upstream_unavailable', 'upstream_unavailable',
    `tokengate could not open a connection to ${where}; retry shortly, and if it persists tell a DBA (the gateway's operational log has the cause)`,
    err.message);
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function revokedMessage(r: Revocation): string {
  const t = r.target;
  const who = 'sub' in t ? 'your subject' : 'client' in t ? 'your client' : 'this token';
  const why = r.reason ? ` (reason: ${r.reason.slice(0, 200)})` : '';
  const next = r.until !== undefined && r.until > r.createdAt
    ? `access is locked until ${iso(r.until)}; connect again after that with a fresh token`
    : 'a token issued after that time will work once access is restored; ask the operator, then fetch a fresh token';
  return `access for ${who} was revoked by the operator at ${iso(r.createdAt)}${why}; ${next}`;
}
