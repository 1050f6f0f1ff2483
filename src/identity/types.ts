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
  | 'idp_unavailable';

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
