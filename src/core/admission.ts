import type { Config, Protocol, RoleConfig, UpstreamConfig } from '../config/schema';
import { decide, type Decision } from '../grants/decide';
import { TokenRejectedError, type Identity } from '../identity/types';
import type { Clock } from './clock';
import { PoolClosedError, PoolExhaustedError, type Pool, type UpstreamConnection } from './pool';
import type { ConnectionLeases, Lease } from './state/connectionLeases';
import type { Revocation, RevocationStore } from './state/revocations';

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
  | 'limit'
  | 'pool_exhausted'
  | 'upstream_unavailable';

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
  /** Told how long each pool acquire took, handed out or not (metrics). */
  onAcquire?: (protocol: Protocol, upstream: string, role: string, seconds: number) => void;
}

const refuse = (kind: RefusalKind, reason: string, message: string, detail?: string): Refusal => ({ ok: false, kind, reason, message, detail });

export class Admission {
  constructor(private readonly deps: AdmissionDeps) {}

  /** The token's identity, unless the token is invalid or an operator revoked it. Checked on every login, cached token or not. */
  async identify(token: string): Promise<Admitted<Identity>> {
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

  /** Counts the session under its identity and grant (caps are enforced by the leases' limits). */
  lease(identity: Identity, grant: string | undefined): Admitted<Lease> {
    const requests = [
      { key: 'all', limit: Infinity },
      { key: `identity:${identity.sub}`, limit: Infinity },
      ...(grant ? [{ key: `grant:${grant}`, limit: Infinity }] : []),
    ];
    const r = this.deps.leases.acquire(requests);
    if (r.ok) return { ok: true, value: r.lease };
    return refuse('limit', 'connection_limit', `too many connections (${r.count} of at most ${r.limit} for ${r.key}); close idle sessions and retry`);
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
        return refuse('upstream_unavailable', 'upstream_unavailable',
          `tokengate could not open a connection to upstream "${upstream}" for role "${role}"; retry shortly, and if it persists tell a DBA (the gateway's audit log has the cause)`,
          (err as Error).message);
      }
    }
  }
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
