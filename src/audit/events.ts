import type { Protocol } from '../config/schema';

/**
 * Audit records, one JSON line each. Identity fields come from verified claims only;
 * no field ever holds a token, password or other secret.
 */
export interface IdentityFields {
  sub?: string;
  cid?: string;
  groups?: string[];
  jti?: string;
  /** ISO time the token expires. */
  tokenExpiresAt?: string;
}

export interface ConnectionAccepted extends IdentityFields {
  event: 'connection_accepted';
  sessionId: string;
  protocol: Protocol;
  remote: string;
  /** The load balancer's host:port when a PROXY protocol header named the client (remote). */
  via?: string;
  tls: boolean;
  grant: string;
  upstream: string;
  role: string;
  database: string;
  upstreamDatabase: string;
  applicationName?: string;
}

export interface ConnectionRejected extends IdentityFields {
  event: 'connection_rejected';
  sessionId: string;
  protocol: Protocol;
  remote: string;
  via?: string;
  tls: boolean;
  /** A stable code: expired, bad_audience, role_not_granted, plaintext_refused, ... */
  reason: string;
  /** The same text the client was sent. */
  message: string;
  role?: string;
  database?: string;
}

export interface QueryRecord extends IdentityFields {
  event: 'query';
  sessionId: string;
  protocol: Protocol;
  sql: string;
  truncated: boolean;
  durationMs: number;
  /** CommandComplete tag(s) (PG) or OK summary (MySQL). */
  tag?: string;
  sqlState?: string;
  error?: string;
}

export interface SessionEnd extends IdentityFields {
  event: 'session_end';
  sessionId: string;
  protocol: Protocol;
  remote: string;
  durationMs: number;
  bytesFromClient: number;
  bytesToClient: number;
  queries: number;
  reason: string;
  upstreamReused?: boolean;
  /** Who ended it from outside: an operator's subject, or "admin" for the admin token file. */
  endedBy?: string;
}

/** A call to the admin API that needed a bearer, allowed or refused. The identity fields are the operator's. */
export interface AdminRequest extends IdentityFields {
  event: 'admin_request';
  method: string;
  /** The path and query string; never a header, so never the bearer. */
  path: string;
  remote: string;
  /** The HTTP status answered. */
  status: number;
  /** Who called: an operator's subject, or "admin" for the token file; absent when no valid bearer came. */
  caller?: string;
  /** What was done, for state changes ("killed pg-…", "revoked sub=… as rv-…"). */
  action?: string;
  /** The error the caller was sent. */
  error?: string;
}

export type AuditEvent = ConnectionAccepted | ConnectionRejected | QueryRecord | SessionEnd | AdminRequest;

type AuditedIdentity = { sub: string; clientId?: string; groups: string[]; jti?: string; expiresAt: number };

/** Verified identities are immutable and shared by every session of a cached token: compute once. */
const fieldsOf = new WeakMap<AuditedIdentity, Readonly<IdentityFields>>();

/** The audit view of a verified identity (claims only; never the token). Frozen and shared: spread it. */
export function identityFields(id: AuditedIdentity | undefined): Readonly<IdentityFields> {
  if (!id) return NO_IDENTITY;
  let fields = fieldsOf.get(id);
  if (!fields) {
    fields = Object.freeze({ sub: id.sub, cid: id.clientId, groups: id.groups, jti: id.jti, tokenExpiresAt: new Date(id.expiresAt * 1000).toISOString() });
    fieldsOf.set(id, fields);
  }
  return fields;
}

const NO_IDENTITY: Readonly<IdentityFields> = Object.freeze({});
