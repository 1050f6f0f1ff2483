/** What the gateway knows about the agent after its token was verified. */
export interface Identity {
  /** The token's `sub` (a user, or the client id for client-credentials tokens). */
  sub: string;
  /** The token's `cid` (Okta) or `client_id`/`azp`; undefined when absent. */
  clientId?: string;
  /** Okta `uid` when a user is bound. */
  uid?: string;
  /** Values of the configured groups claim (empty when absent). */
  groups: string[];
  /** From `scp` (array) or `scope` (space-separated). */
  scopes: string[];
  jti?: string;
  issuer: string;
  /** Seconds since the epoch. */
  expiresAt: number;
  issuedAt?: number;
}

/** Why a token was refused. Stable codes for audit; `message` is written for the agent. */
export type TokenRejectReason =
  | 'malformed'
  | 'expired'
  | 'not_yet_valid'
  | 'missing_claim'
  | 'bad_issuer'
  | 'bad_audience'
  | 'algorithm_not_allowed'
  | 'bad_signature'
  | 'unknown_key'
  | 'lifetime_too_long'
  | 'missing_scope'
  | 'issued_in_future'
  | 'idp_unavailable'
  /** A claim of the wrong JSON type (groups as a string, scp as a number, exp as a string...). */
  | 'invalid_claim'
  /** A sender-constrained token (`cnf`): bound to a key the agent holds, never a bearer password. */
  | 'sender_constrained'
  /** A header that brings its own key or key location (jwk, x5c, jku, x5u). */
  | 'key_in_header'
  /** A `crit` header naming extensions the gateway does not implement. */
  | 'unsupported_critical_header'
  /** Longer than MAX_ACCESS_TOKEN_BYTES: refused before any parsing or signature work. */
  | 'token_too_large';

export class TokenRejectedError extends Error {
  constructor(
    readonly reason: TokenRejectReason,
    /** Agent-facing text: what was wrong, what was expected, how to fix it. Never contains the token. */
    message: string,
  ) {
    super(message);
    this.name = 'TokenRejectedError';
  }
}
