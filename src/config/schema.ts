import { isAbsolute, resolve } from 'node:path';
import { isMapping, Section, shown, typeOf } from './fields';
import { HostPortError, parseHostPort } from './hostport';
import { joinPath, ProblemList } from './problems';
import { envReference, SecretError, secretFromEnv, secretFromFile } from './resolveSecret';
import { Secret } from './secret';
import type {
  AuditConfig,
  Config,
  GrantConfig,
  GrantMatch,
  ListenConfig,
  OidcConfig,
  PoolConfig,
  Protocol,
  RoleConfig,
  SessionConfig,
  TlsConfig,
  UpstreamConfig,
  UpstreamTlsMode,
} from './types';

/**
 * The accepted shape of tokengate.yaml, read section by section into the typed Config.
 * Per-field checks live here; checks across sections live in crossChecks.ts.
 */

export interface ReadContext {
  problems: ProblemList;
  env: NodeJS.ProcessEnv;
  /** Relative file paths (passwordFile, certFile, ...) are resolved against this. */
  baseDir: string;
}

export const TOP_KEYS = ['listen', 'tls', 'oidc', 'upstreams', 'grants', 'audit', 'session'] as const;
const LISTEN_KEYS = ['postgres', 'mysql', 'admin'] as const;
const TLS_KEYS = ['certFile', 'keyFile', 'allowPlaintextFromLoopback', 'allowPlaintextFromAnywhere'] as const;
const OIDC_KEYS = [
  'issuer', 'audience', 'jwksUri', 'algorithms', 'clockSkew', 'maxTokenLifetime', 'requiredScopes',
  'groupsClaim', 'fetchTimeout', 'jwksCooldown', 'jwksCacheMaxAge', 'devIssuer',
] as const;
const UPSTREAM_KEYS = ['protocol', 'host', 'port', 'tls', 'caFile', 'pool', 'databases', 'roles'] as const;
const POOL_KEYS = ['maxConnections', 'idleTimeout', 'maxLifetime', 'acquireTimeout'] as const;
const ROLE_KEYS = ['user', 'password', 'passwordFile'] as const;
const GRANT_KEYS = ['name', 'match', 'upstream', 'databases', 'roles'] as const;
export const MATCH_KEYS = ['groups', 'clients', 'scopes', 'subjects'] as const;
const AUDIT_KEYS = ['file', 'queries', 'maxQueryBytes'] as const;
const SESSION_KEYS = ['authTimeout', 'expiryGrace'] as const;

export const PROTOCOLS: readonly Protocol[] = ['postgres', 'mysql'];
export const DEFAULT_PORTS: Record<Protocol, number> = { postgres: 5432, mysql: 3306 };
const UPSTREAM_TLS_MODES: readonly UpstreamTlsMode[] = ['disable', 'prefer', 'require', 'verify-full'];

/** Asymmetric JWS algorithms only: `none` and HS* would let anyone holding the secret mint tokens. */
export const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/** Names of upstreams, aliases, roles and grants: they appear in startup packets, logs and messages. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.$-]{0,62}$/;
const NAME_RULE = 'start with a letter, digit or _, then letters, digits, _ . $ -, at most 63 characters';
/** Names that would reach Object.prototype when used as record keys. */
const RESERVED_NAMES = ['__proto__', 'constructor', 'prototype'];

/** Records a problem and returns false for an invalid name; callers then skip the entry. */
function checkName(problems: ProblemList, path: string, name: string, what: string): boolean {
  if (RESERVED_NAMES.includes(name)) {
    problems.add(path, `${what} name ${shown(name)} is reserved; choose another name`);
    return false;
  }
  if (!NAME.test(name)) {
    problems.add(path, `${what} name ${shown(name)} is not valid: names ${NAME_RULE}`);
    return false;
  }
  return true;
}

function filePath(ctx: ReadContext, p: string | undefined): string | undefined {
  if (p === undefined || p === '') return p;
  return isAbsolute(p) ? p : resolve(ctx.baseDir, p);
}

function readListen(ctx: ReadContext, root: Section): ListenConfig {
  const s = root.section('listen', LISTEN_KEYS, true);
  const out: ListenConfig = {};
  if (!s) return out;
  for (const key of LISTEN_KEYS) {
    if (!s.has(key)) continue;
    const text = s.raw[key];
    if (typeof text !== 'string' && typeof text !== 'number') {
      s.problem(key, `expected "host:port" such as 127.0.0.1:6432, got ${shown(text)}`);
      continue;
    }
    try {
      out[key] = parseHostPort(String(text).trim(), true);
    } catch (err) {
      if (!(err instanceof HostPortError)) throw err;
      s.problem(key, err.message);
    }
  }
  if (!out.postgres && !out.mysql && !s.has('postgres') && !s.has('mysql')) {
    ctx.problems.add('listen', 'needs at least one client listener: postgres (e.g. 127.0.0.1:6432) and/or mysql (e.g. 127.0.0.1:6033)');
  }
  return out;
}

function readTls(ctx: ReadContext, root: Section): TlsConfig {
  const s = root.section('tls', TLS_KEYS, false);
  return {
    certFile: filePath(ctx, s?.optionalString('certFile')),
    keyFile: filePath(ctx, s?.optionalString('keyFile')),
    allowPlaintextFromLoopback: s?.boolean('allowPlaintextFromLoopback', true) ?? true,
    allowPlaintextFromAnywhere: s?.boolean('allowPlaintextFromAnywhere', false) ?? false,
  };
}

function readAlgorithms(s: Section): string[] {
  const algs = s.stringList('algorithms', ['RS256']);
  for (const alg of algs) {
    if (alg.toLowerCase() === 'none' || /^HS\d+$/i.test(alg)) {
      s.problem('algorithms', `${shown(alg)} is not allowed: unsigned and shared-secret (HS*) tokens could be forged by anyone holding the secret; use an asymmetric algorithm such as RS256 (Okta signs with RS256)`);
    } else if (!ALLOWED_ALGORITHMS.includes(alg)) {
      s.problem('algorithms', `unknown algorithm ${shown(alg)}; expected some of ${ALLOWED_ALGORITHMS.join(', ')}`);
    }
  }
  return algs;
}

function readOidc(root: Section): OidcConfig {
  const s = root.section('oidc', OIDC_KEYS, true);
  const o = s ?? Section.empty('oidc');
  return {
    issuer: s ? s.string('issuer') : '',
    audience: s ? s.stringList('audience', undefined) : [],
    jwksUri: o.optionalString('jwksUri'),
    algorithms: readAlgorithms(o),
    clockSkewMs: o.duration('clockSkew', '30s'),
    maxTokenLifetimeMs: o.duration('maxTokenLifetime', undefined, { min: 1000 }),
    requiredScopes: o.stringList('requiredScopes', [], true),
    groupsClaim: o.string('groupsClaim', 'groups'),
    fetchTimeoutMs: o.duration('fetchTimeout', '5s', { min: 1 }),
    jwksCooldownMs: o.duration('jwksCooldown', '30s'),
    jwksCacheMaxAgeMs: o.duration('jwksCacheMaxAge', '10m', { min: 1000 }),
    devIssuer: o.boolean('devIssuer', false),
  };
}

function readPool(s: Section | undefined): PoolConfig {
  const p = s ?? Section.empty('pool');
  return {
    maxConnections: p.integer('maxConnections', 1, 10_000, 20),
    idleTimeoutMs: p.duration('idleTimeout', '5m', { min: 1000 }),
    maxLifetimeMs: p.duration('maxLifetime', '1h', { min: 1000 }),
    acquireTimeoutMs: p.duration('acquireTimeout', '10s', { min: 1 }),
  };
}

function readDatabases(ctx: ReadContext, s: Section): Record<string, string> {
  const out: Record<string, string> = {};
  const raw = s.raw.databases;
  if (!isMapping(raw)) {
    s.problem('databases', `is required: a mapping of client-facing alias -> real database name (e.g. app: app_production), got ${shown(raw)}`);
    return out;
  }
  const path = s.at('databases');
  for (const [alias, real] of Object.entries(raw)) {
    if (!checkName(ctx.problems, joinPath(path, alias), alias, 'database alias')) continue;
    if (typeof real !== 'string' || real.trim() === '') {
      ctx.problems.add(joinPath(path, alias), `expected the real database name (a non-empty string), got ${shown(real)}`);
      continue;
    }
    out[alias] = real;
  }
  if (Object.keys(raw).length === 0) s.problem('databases', 'must map at least one alias to a database');
  return out;
}

function readRolePassword(ctx: ReadContext, r: Section): Secret {
  const placeholder = new Secret('', 'unresolved');
  const hasPassword = r.has('password');
  const hasFile = r.has('passwordFile');
  if (hasPassword === hasFile) {
    ctx.problems.add(r.path, hasPassword
      ? 'set either password or passwordFile, not both'
      : 'needs a password: password: ${ENV_VAR} or passwordFile: /path/to/file');
    return placeholder;
  }
  try {
    if (hasPassword) {
      // Never echo this value: it may be a real password typed inline by mistake.
      const name = envReference(r.raw.password);
      if (name === undefined) {
        r.problem('password', `inline passwords are not accepted (got ${typeOf(r.raw.password)}, not shown); write password: \${SOME_ENV_VAR} and set that variable, or use passwordFile: /path/to/file`);
        return placeholder;
      }
      return secretFromEnv(name, ctx.env);
    }
    const file = r.raw.passwordFile;
    if (typeof file !== 'string' || file.trim() === '') {
      r.problem('passwordFile', `expected a file path, got ${typeOf(file)}`);
      return placeholder;
    }
    return secretFromFile(file, ctx.baseDir);
  } catch (err) {
    if (!(err instanceof SecretError)) throw err;
    r.problem(hasPassword ? 'password' : 'passwordFile', err.message);
    return placeholder;
  }
}

function readRoles(ctx: ReadContext, s: Section): Record<string, RoleConfig> {
  const out: Record<string, RoleConfig> = {};
  const raw = s.raw.roles;
  if (!isMapping(raw)) {
    s.problem('roles', `is required: a mapping of role name -> { user, password | passwordFile }, got ${typeOf(raw)}`);
    return out;
  }
  const path = s.at('roles');
  for (const [name, value] of Object.entries(raw)) {
    const rolePath = joinPath(path, name);
    if (!checkName(ctx.problems, rolePath, name, 'role')) continue;
    const r = Section.of(ctx.problems, rolePath, value, ROLE_KEYS, true);
    if (!r) {
      // Keep the name so grants that use it do not report a second, misleading problem.
      out[name] = { name, user: '', password: new Secret('', 'unresolved') };
      continue;
    }
    out[name] = { name, user: r.string('user'), password: readRolePassword(ctx, r) };
  }
  if (Object.keys(raw).length === 0) s.problem('roles', 'must define at least one role');
  return out;
}

function readUpstream(ctx: ReadContext, name: string, path: string, value: unknown): UpstreamConfig | undefined {
  if (!checkName(ctx.problems, path, name, 'upstream')) return undefined;
  const s = Section.of(ctx.problems, path, value, UPSTREAM_KEYS);
  if (!s) return undefined;
  let protocol: Protocol = 'postgres';
  if (!s.has('protocol')) s.problem('protocol', `is required: one of ${PROTOCOLS.join(', ')}`);
  else protocol = s.oneOf('protocol', PROTOCOLS, 'postgres');
  const tls = s.oneOf('tls', UPSTREAM_TLS_MODES, 'prefer');
  const caFile = filePath(ctx, s.optionalString('caFile'));
  if (tls === 'verify-full' && !caFile) {
    s.problem('caFile', 'is required when tls is verify-full: the CA certificate (PEM) that signed the database server certificate');
  }
  return {
    name,
    protocol,
    host: s.string('host'),
    port: s.integer('port', 1, 65535, DEFAULT_PORTS[protocol]),
    tls,
    caFile,
    pool: readPool(s.section('pool', POOL_KEYS, false)),
    databases: readDatabases(ctx, s),
    roles: readRoles(ctx, s),
  };
}

function readUpstreams(ctx: ReadContext, root: Section): Record<string, UpstreamConfig> {
  const out: Record<string, UpstreamConfig> = {};
  const raw = root.raw.upstreams;
  if (!isMapping(raw) || Object.keys(raw).length === 0) {
    root.problem('upstreams', `is required: a mapping of upstream name -> { protocol, host, port, databases, roles }, got ${shown(raw)}`);
    return out;
  }
  for (const [name, value] of Object.entries(raw)) {
    const up = readUpstream(ctx, name, joinPath('upstreams', name), value);
    if (up) out[name] = up;
  }
  return out;
}

function readMatch(ctx: ReadContext, g: Section): GrantMatch {
  const m = g.section('match', MATCH_KEYS, true);
  const out: GrantMatch = {};
  if (!m) return out;
  for (const key of MATCH_KEYS) {
    if (m.has(key)) out[key] = m.stringList(key, undefined);
  }
  if (Object.keys(out).length === 0) {
    ctx.problems.add(m.path, `needs at least one of ${MATCH_KEYS.join(', ')}: a grant that matches everyone is not allowed`);
  }
  return out;
}

function readGrants(ctx: ReadContext, root: Section): GrantConfig[] {
  const raw = root.raw.grants;
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    root.problem('grants', `expected a list of grants (- name: ..., match: ..., upstream: ..., databases: [...], roles: [...]), got ${shown(raw)}`);
    return [];
  }
  const out: GrantConfig[] = [];
  raw.forEach((value, i) => {
    const g = Section.of(ctx.problems, `grants[${i}]`, value, GRANT_KEYS);
    if (!g) return;
    const name = g.string('name');
    if (name) checkName(ctx.problems, g.at('name'), name, 'grant');
    const databases = g.stringList('databases', undefined);
    if (databases.includes('*') && databases.length > 1) {
      g.problem('databases', `"*" (every database of the upstream) must be the only entry`);
    }
    out.push({ name, match: readMatch(ctx, g), upstream: g.string('upstream'), databases, roles: g.stringList('roles', undefined) });
  });
  return out;
}

function readAudit(ctx: ReadContext, root: Section): AuditConfig {
  const s = root.section('audit', AUDIT_KEYS, false);
  const file = s?.string('file', 'stdout') ?? 'stdout';
  return {
    file: file === 'stdout' || file === 'stderr' ? file : (filePath(ctx, file) as string),
    queries: s?.boolean('queries', true) ?? true,
    maxQueryBytes: s?.integer('maxQueryBytes', 0, 1024 * 1024, 4096) ?? 4096,
  };
}

function readSession(root: Section): SessionConfig {
  const s = root.section('session', SESSION_KEYS, false) ?? Section.empty('session');
  return {
    authTimeoutMs: s.duration('authTimeout', '15s', { min: 100 }),
    expiryGraceMs: s.duration('expiryGrace', '0s'),
  };
}

/** Reads the parsed YAML document into a Config, recording every per-field problem in ctx. */
export function readConfig(ctx: ReadContext, doc: unknown, source: string): Config {
  const root = Section.of(ctx.problems, '', doc ?? {}, TOP_KEYS) ?? new Section(ctx.problems, '', {});
  return {
    source,
    listen: readListen(ctx, root),
    tls: readTls(ctx, root),
    oidc: readOidc(root),
    upstreams: readUpstreams(ctx, root),
    grants: readGrants(ctx, root),
    audit: readAudit(ctx, root),
    session: readSession(root),
  };
}
