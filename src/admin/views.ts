import type { SessionInfo } from '../core/sessionRegistry';
import type { Revocation } from '../core/state/revocations';

/** JSON views of sessions and revocations: ISO times, null for what is not known. */

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

export interface SessionView {
  id: string;
  /** The gateway instance (process) that holds the session. */
  instance: string;
  protocol: string;
  sub: string | null;
  cid: string | null;
  jti: string | null;
  grant: string | null;
  role: string | null;
  database: string | null;
  upstream: string | null;
  remote: string;
  startedAt: string | null;
  tokenExpiresAt: string | null;
  state: string;
  queryStartedAt: string | null;
  queries: number;
  bytesFromClient: number;
  bytesToClient: number;
}

export function sessionView(i: SessionInfo, instance: string): SessionView {
  return {
    id: i.id, instance, protocol: i.protocol, sub: i.sub ?? null, cid: i.cid ?? null, jti: i.jti ?? null,
    grant: i.grant ?? null, role: i.role ?? null, database: i.database ?? null, upstream: i.upstream ?? null, remote: i.remote,
    startedAt: iso(i.startedAt), tokenExpiresAt: iso(i.tokenExpiresAt), state: i.state, queryStartedAt: iso(i.queryStartedAt),
    queries: i.queries, bytesFromClient: i.bytesFromClient, bytesToClient: i.bytesToClient,
  };
}

/** A revocation as POST /revocations takes it (one of sub, client, jti), with its times. */
export function revocationView(r: Revocation): Record<string, string | null> {
  return {
    id: r.id, ...r.target, reason: r.reason ?? null, by: r.by ?? null,
    createdAt: iso(r.createdAt), until: iso(r.until), expiresAt: iso(r.expiresAt),
  };
}
