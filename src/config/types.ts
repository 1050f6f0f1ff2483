import type { Secret } from './secret';

/** The validated, typed configuration. Durations are milliseconds; secrets are resolved. */

export type Protocol = 'postgres' | 'mysql';

export interface HostPort {
  host: string;
  port: number;
}

export interface ListenConfig {
  postgres?: HostPort;
  mysql?: HostPort;
  admin?: HostPort;
}

export interface TlsConfig {
  certFile?: string;
  keyFile?: string;
  /** A token over plaintext is accepted from a loopback client only when this is true (default true). */
  allowPlaintextFromLoopback: boolean;
  /** Explicit, dangerous opt-in: accept tokens over plaintext from any address (default false). */
  allowPlaintextFromAnywhere: boolean;
}

export interface OidcConfig {
  issuer: string;
  audience: string[];
  /** Discovered from the issuer's metadata when absent. */
  jwksUri?: string;
  algorithms: string[];
  clockSkewMs: number;
  /** Reject tokens whose exp - iat is longer than this. */
  maxTokenLifetimeMs?: number;
  requiredScopes: string[];
  groupsClaim: string;
  /** HTTP timeout for discovery and JWKS fetches. */
  fetchTimeoutMs: number;
  /** Minimum time between JWKS refetches triggered by an unknown kid. */
  jwksCooldownMs: number;
  /** How long fetched keys are used before a background refresh. */
  jwksCacheMaxAgeMs: number;
  /** The embedded development issuer: only for `tokengate demo` or explicit opt-in. */
  devIssuer: boolean;
}

export interface PoolConfig {
  maxConnections: number;
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  acquireTimeoutMs: number;
}

export type UpstreamTlsMode = 'disable' | 'prefer' | 'require' | 'verify-full';

export interface RoleConfig {
  /** The role name agents ask for (the key under `roles:`). */
  name: string;
  /** The upstream database user the gateway logs in as. */
  user: string;
  password: Secret;
}

export interface UpstreamConfig {
  name: string;
  protocol: Protocol;
  host: string;
  port: number;
  tls: UpstreamTlsMode;
  caFile?: string;
  pool: PoolConfig;
  /** Client-facing alias -> real database name. */
  databases: Record<string, string>;
  roles: Record<string, RoleConfig>;
}

export interface GrantMatch {
  /** Any of these values in the token's groups claim. */
  groups?: string[];
  /** Any of these equal to the token's cid (or sub when there is no cid). */
  clients?: string[];
  /** The token must carry all of these scopes. */
  scopes?: string[];
  /** Any of these equal to the token's sub. */
  subjects?: string[];
}

export interface GrantConfig {
  name: string;
  /** Every key present must hold; within a key, any listed value matches (scopes: all). */
  match: GrantMatch;
  upstream: string;
  databases: string[];
  roles: string[];
}

export interface AuditConfig {
  /** 'stdout', 'stderr' or a file path; JSON lines. */
  file: string;
  queries: boolean;
  maxQueryBytes: number;
}

export interface SessionConfig {
  /** A client must finish the handshake (startup + token) within this. */
  authTimeoutMs: number;
  /** Extra time after the token's exp before the session is ended. */
  expiryGraceMs: number;
}

export interface Config {
  /** Path the config was loaded from (or '<embedded>'). */
  source: string;
  listen: ListenConfig;
  tls: TlsConfig;
  oidc: OidcConfig;
  upstreams: Record<string, UpstreamConfig>;
  grants: GrantConfig[];
  audit: AuditConfig;
  session: SessionConfig;
}
