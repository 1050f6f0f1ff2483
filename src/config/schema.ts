import { availableParallelism } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { parseCidr } from './cidr';
import { checkReferences } from './crossChecks';
import { sharedStateProblem } from './sharedState';
import {
  bool, duration, expected, integer, name, nameMap, oneOf, section, stringList, text, whenReadable, withMsKeys, withNames,
} from './fields';
import { formatHostPort, HostPortError, isLoopbackHost, parseHostPort } from './hostport';
import { readable } from './issues';
import { shown, typeOf } from './messages';
import { ENV_REF, envReference, expandCredentialsDirectory, SecretError, secretFromEnv, secretFromFile } from './resolveSecret';
import type { Secret } from './secret';

/**
 * tokengate.yaml, described once. The schema checks the YAML as written (durations as "30s",
 * passwords as ${ENV}) and turns it into the typed Config the gateway runs on (durations in ms,
 * resolved Secrets, absolute file paths, names filled in): every Config type below is its output.
 * The same definition, read from its input side, is the JSON Schema editors use (jsonSchema.ts).
 *
 * It is built per load by configSchema(context) because reading a config resolves secrets and
 * relative paths: an unset variable or an unreadable password file is a problem at a key path
 * like any other, reported in the same pass, and the output needs no second "resolved" type.
 */

export interface ConfigContext {
  /** Where the config came from, for Config.source and messages. */
  source: string;
  env: NodeJS.ProcessEnv;
  /** Relative file paths (passwordFile, certFile, ...) are resolved against this. */
  baseDir: string;
}

export const PROTOCOLS = ['postgres', 'mysql'] as const;
export const DEFAULT_PORTS: Record<Protocol, number> = { postgres: 5432, mysql: 3306 };
const UPSTREAM_TLS_MODES = ['disable', 'prefer', 'require', 'verify-full'] as const;
export const MATCH_KEYS = ['groups', 'clients', 'scopes', 'subjects'] as const;

/** Asymmetric JWS algorithms only: `none` and HS* would let anyone holding the secret mint tokens. */
export const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

function absolute(ctx: ConfigContext, p: string): string {
  const expanded = expandCredentialsDirectory(p, ctx.env);
  return isAbsolute(expanded) ? expanded : resolve(ctx.baseDir, expanded);
}

/** A file path; `${CREDENTIALS_DIRECTORY}/name` is a systemd credential (LoadCredential=). */
function filePath(ctx: ConfigContext) {
  return text().transform((p, c) => {
    try {
      return absolute(ctx, p);
    } catch (err) {
      c.addIssue({ code: 'custom', message: (err as Error).message, input: p });
      return z.NEVER;
    }
  });
}

const LISTEN_EXAMPLE = 'expected "host:port" such as 127.0.0.1:6432';

/** "host:port" ("[::1]:6432" for IPv6); port 0 picks any free port. */
function listenAddress() {
  const toHostPort = (text: string): ReturnType<typeof parseHostPort> | string => {
    try {
      return parseHostPort(text.trim(), true);
    } catch (err) {
      if (!(err instanceof HostPortError)) throw err;
      return err.message;
    }
  };
  return z.string({
    // A bare port (`postgres: 6432`) is a number in YAML: explain it as the text it was meant to be.
    error: (iss) => (typeof iss.input === 'number' ? String(toHostPort(String(iss.input))) : `${LISTEN_EXAMPLE}, got ${shown(iss.input)}`),
  }).meta({ examples: ['127.0.0.1:6432', '0.0.0.0:6033', '[::1]:6432'] }).transform((text, ctx) => {
    const hp = toHostPort(text);
    if (typeof hp !== 'string') return hp;
    ctx.addIssue({ code: 'custom', message: hp });
    return z.NEVER;
  });
}

/** An IP network as "10.0.0.0/8", "fd00::/8" or one address. */
function cidr() {
  return text().meta({ examples: ['10.0.0.0/8', '192.0.2.10', 'fd00::/8'] }).transform((entry, ctx) => {
    try {
      return parseCidr(entry.trim());
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}

function proxyProtocolSchema() {
  return section({
    trusted: z.array(cidr(), { error: expected('a list of CIDRs such as [10.0.0.0/8]') })
      .min(1, { error: 'must list at least one load balancer address or network' })
      .describe('the load balancers (CIDRs or addresses) whose connections must start with a PROXY v1 or v2 header naming the client; others connect directly and may not send one'),
  }).describe('HAProxy PROXY protocol on the postgres and mysql listeners, so audit records, the loopback rule and the session list see the real client address.');
}

function listenSchema() {
  return section({
    postgres: listenAddress().optional().describe('host:port of the PostgreSQL listener for agents (omit to disable)'),
    mysql: listenAddress().optional().describe('host:port of the MySQL/MariaDB listener for agents (omit to disable)'),
    admin: listenAddress().optional().describe('host:port of the admin HTTP API: health, readiness, metrics, sessions, kill, revocations, reload (omit to disable)'),
    proxyProtocol: proxyProtocolSchema().optional(),
  }, { omitAbsent: true }).superRefine((listen, ctx) => {
    if (listen.postgres === undefined && listen.mysql === undefined) {
      ctx.addIssue({ code: 'custom', message: 'needs at least one client listener: postgres (e.g. 127.0.0.1:6432) and/or mysql (e.g. 127.0.0.1:6033)' });
    }
    const used = new Map<string, string>();
    for (const key of ['postgres', 'mysql', 'admin'] as const) {
      const hp = listen[key];
      // Port 0 asks for any free port: two such listeners never clash.
      if (!hp || hp.port === 0 || !readable(ctx.issues, [key])) continue;
      const addr = formatHostPort(hp);
      const other = used.get(addr);
      if (other) ctx.addIssue({ code: 'custom', path: [key], message: `${addr} is already used by listen.${other}; give each listener its own port` });
      else used.set(addr, key);
    }
  }, whenReadable()).describe('Where tokengate listens. At least one of postgres and mysql.');
}

function tlsSchema(ctx: ConfigContext) {
  return section({
    certFile: filePath(ctx).optional().describe('PEM certificate chain for client TLS (SSLRequest and PG17 direct TLS); set together with keyFile'),
    keyFile: filePath(ctx).optional().describe('PEM private key of certFile'),
    allowPlaintextFromLoopback: bool().default(true).describe('accept a token without TLS from 127.0.0.0/8 and ::1'),
    allowPlaintextFromAnywhere: bool().default(false).describe("accept a token without TLS from any address (dangerous: don't)"),
  }).superRefine((tls, c) => {
    if (Boolean(tls.certFile) !== Boolean(tls.keyFile)) {
      c.addIssue({ code: 'custom', path: [tls.certFile ? 'keyFile' : 'certFile'], message: 'tls.certFile and tls.keyFile must be set together (the PEM certificate chain and its private key)' });
    }
    if (!tls.certFile && !tls.keyFile && !tls.allowPlaintextFromLoopback && !tls.allowPlaintextFromAnywhere) {
      c.addIssue({ code: 'custom', message: 'no client could connect: there is no certificate (certFile/keyFile) and plaintext is refused from everywhere; add a certificate or set allowPlaintextFromLoopback: true' });
    }
  }, whenReadable('certFile', 'keyFile', 'allowPlaintextFromLoopback', 'allowPlaintextFromAnywhere'))
    .describe('TLS for agent connections: tokens are bearer credentials, so plaintext is refused except from this machine.');
}

/** An https URL (plain http only on a loopback host, for a development issuer). */
function url(what: string) {
  return text().superRefine((text, ctx) => {
    if (text.trim() === '') return; // reported as empty
    let parsed: URL;
    try {
      parsed = new URL(text);
    } catch {
      ctx.addIssue({ code: 'custom', message: `expected the ${what} URL (e.g. https://example.okta.com/oauth2/default), got ${JSON.stringify(text.slice(0, 80))}` });
      return;
    }
    if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && isLoopbackHost(parsed.hostname))) {
      ctx.addIssue({ code: 'custom', message: `must use https (plain http is accepted only for a loopback development issuer), got ${parsed.protocol.replace(':', '')}` });
    }
  });
}

function algorithms() {
  return stringList().superRefine((algs, ctx) => {
    // Runs on a list with bad items too (see `when`): its good items are checked as well.
    for (const alg of algs.filter((a): a is string => typeof a === 'string' && a.trim() !== '')) {
      if (alg.toLowerCase() === 'none' || /^HS\d+$/i.test(alg)) {
        ctx.addIssue({ code: 'custom', message: `${shown(alg)} is not allowed: unsigned and shared-secret (HS*) tokens could be forged by anyone holding the secret; use an asymmetric algorithm such as RS256 (Okta signs with RS256)` });
      } else if (!ALLOWED_ALGORITHMS.includes(alg)) {
        ctx.addIssue({ code: 'custom', message: `unknown algorithm ${shown(alg)}; expected some of ${ALLOWED_ALGORITHMS.join(', ')}` });
      }
    }
  }, { when: (payload) => Array.isArray(payload.value) });
}

function oidcSchema() {
  return section({
    issuer: url('issuer').describe("the Okta custom authorization server, e.g. https://acme.okta.com/oauth2/default; must equal the tokens' iss exactly (https unless loopback)")
      .meta({ examples: ['https://example.okta.com/oauth2/default'] }),
    audience: stringList().describe("expected aud: the tokens' aud must contain one of these (a string or a list)"),
    jwksUri: url('JWKS').optional().describe("where the signing keys are; discovered from the issuer's metadata when absent (for Okta, <issuer>/v1/keys)"),
    algorithms: algorithms().prefault(['RS256']).describe('accepted signature algorithms (none and HMAC are always refused)'),
    clockSkew: duration().prefault('30s').describe("tolerance for exp/nbf/iat against this machine's clock"),
    maxTokenLifetime: duration({ min: 1000 }).optional().describe('refuse tokens whose exp - iat is longer than this (default: not limited)'),
    requiredScopes: stringList({ allowEmpty: true }).prefault([]).describe('scopes every token must carry (scp array or scope string)'),
    groupsClaim: text().default('groups').describe("the claim holding the user's groups"),
    fetchTimeout: duration({ min: 1 }).prefault('5s').describe('HTTP timeout for discovery and key (JWKS) fetches'),
    jwksCooldown: duration().prefault('30s').describe('minimum time between key refetches for an unknown key id (kid)'),
    jwksCacheMaxAge: duration({ min: 1000 }).prefault('10m').describe('fetched keys are refreshed after this'),
    devIssuer: bool().default(false).describe('allow a non-Okta development issuer (tokengate demo); never in production'),
  }).superRefine((oidc, ctx) => {
    // The org authorization server's tokens are for Okta itself; a custom server has /oauth2/ in its path.
    let path: string;
    try {
      path = new URL(oidc.issuer).pathname;
    } catch {
      return; // already reported on oidc.issuer
    }
    if (!path.includes('/oauth2/') && !oidc.devIssuer) {
      ctx.addIssue({
        code: 'custom', path: ['issuer'],
        message: 'has no /oauth2/ in its path: that is the Okta org authorization server, whose access tokens are not meant for other applications; ' +
          'use a custom authorization server such as https://example.okta.com/oauth2/default (or set devIssuer: true for a development issuer)',
      });
    }
  }, whenReadable('issuer', 'devIssuer'))
    .transform((oidc) => withMsKeys(oidc, ['clockSkew', 'maxTokenLifetime', 'fetchTimeout', 'jwksCooldown', 'jwksCacheMaxAge']))
    .describe('The Okta custom authorization server that issues the agents\' access tokens.');
}

function poolSchema() {
  return section({
    maxConnections: integer(1, 10_000).default(20).describe('upstream connections per (upstream, role, database)'),
    idleTimeout: duration({ min: 1000 }).prefault('5m').describe('close idle upstream connections after this'),
    maxLifetime: duration({ min: 1000 }).prefault('1h').describe('replace upstream connections older than this'),
    acquireTimeout: duration({ min: 1 }).prefault('10s').describe('how long an agent waits for a free connection'),
  }).transform((pool) => withMsKeys(pool, ['idleTimeout', 'maxLifetime', 'acquireTimeout']))
    .describe('The pool of upstream connections.');
}

/** `password:` is exactly ${NAME}; the value itself is never shown, in case it is a real password typed inline. */
function envReferenceSchema() {
  const error = (iss: z.core.$ZodRawIssue): string =>
    `inline passwords are not accepted (got ${typeOf(iss.input)}, not shown); write password: \${SOME_ENV_VAR} and set that variable, or use passwordFile: /path/to/file`;
  return z.string({ error }).regex(ENV_REF, { error });
}

function roleSchema(ctx: ConfigContext) {
  const passwordFile = (iss: z.core.$ZodRawIssue): string => `expected a file path, got ${typeOf(iss.input)}`;
  return section({
    user: text().describe('the database user tokengate logs in as'),
    password: envReferenceSchema().optional().describe('the password, from an environment variable: exactly ${NAME} (inline passwords are refused)'),
    passwordFile: text(passwordFile).optional().describe('a file holding the password (trailing newline stripped; keep it chmod 600); relative to the config file'),
  }, { sensitive: true }).superRefine((role, c) => {
    if ((role.password === undefined) === (role.passwordFile === undefined)) {
      c.addIssue({
        code: 'custom',
        message: role.password === undefined ? 'needs a password: password: ${ENV_VAR} or passwordFile: /path/to/file' : 'set either password or passwordFile, not both',
      });
    }
  }, whenReadable()).transform((role, c) => {
    try {
      return { user: role.user, password: resolvePassword(role, ctx) };
    } catch (err) {
      if (!(err instanceof SecretError)) throw err;
      c.addIssue({ code: 'custom', path: [role.password !== undefined ? 'password' : 'passwordFile'], message: err.message, input: undefined });
      return z.NEVER;
    }
  });
}

/** Reads the role's password from the environment or its file; runs only once exactly one of them is set. */
function resolvePassword(role: { password?: string; passwordFile?: string }, ctx: ConfigContext): Secret {
  const variable = envReference(role.password);
  if (variable !== undefined) return secretFromEnv(variable, ctx.env);
  if (role.passwordFile !== undefined) return secretFromFile(expandCredentialsDirectory(role.passwordFile, ctx.env), ctx.baseDir);
  throw new Error('a role without a password passed validation');
}

function upstreamSchema(ctx: ConfigContext) {
  return section({
    protocol: oneOf(PROTOCOLS).describe('the wire protocol of the database: postgres or mysql (MySQL and MariaDB)'),
    host: text().describe('the database server'),
    port: integer(1, 65535).optional().describe('default 5432 for postgres, 3306 for mysql'),
    tls: oneOf(UPSTREAM_TLS_MODES).default('prefer').describe('TLS to the database; verify-full checks the certificate and host name and needs caFile'),
    caFile: filePath(ctx).optional().describe('the CA certificate (PEM) that signed the database server certificate'),
    pool: poolSchema().prefault({}),
    databases: nameMap(name('database alias'), text(expected('the real database name (a non-empty string)')), {
      what: 'a mapping of client-facing alias -> real database name (e.g. app: app_production)',
      empty: 'must map at least one alias to a database',
    }).describe('database names agents ask for (aliases) -> real database names; an alias may be used by only one upstream per protocol'),
    roles: nameMap(name('role'), roleSchema(ctx), {
      what: 'a mapping of role name -> { user, password | passwordFile }',
      empty: 'must define at least one role',
      sensitive: true,
    }).transform(withNames).describe('role names agents ask for -> the database user and password tokengate logs in with'),
  }).superRefine((up, c) => {
    if (up.tls === 'verify-full' && !up.caFile) {
      c.addIssue({ code: 'custom', path: ['caFile'], message: 'is required when tls is verify-full: the CA certificate (PEM) that signed the database server certificate' });
    }
  }, whenReadable('tls', 'caFile')).transform((up) => ({ ...up, port: up.port ?? DEFAULT_PORTS[up.protocol] }));
}

function matchSchema() {
  return section({
    groups: stringList().optional().describe("any of these groups in the token's groups claim"),
    clients: stringList().optional().describe("any of these equal to the token's cid (or sub when there is no cid): for service (client-credentials) tokens"),
    scopes: stringList().optional().describe('the token must carry ALL of these scopes'),
    subjects: stringList().optional().describe("any of these equal to the token's sub"),
  }, { omitAbsent: true }).superRefine((match, ctx) => {
    if (MATCH_KEYS.every((key) => match[key] === undefined)) {
      ctx.addIssue({ code: 'custom', message: `needs at least one of ${MATCH_KEYS.join(', ')}: a grant that matches everyone is not allowed` });
    }
  }, whenReadable()).meta({ minProperties: 1 }).describe('which tokens the grant applies to: every key present must hold; at least one key');
}

function grantSchema() {
  return section({
    name: name('grant').describe('unique name, shown in audit logs and denials'),
    match: matchSchema(),
    upstream: text().describe('the upstream (a key under upstreams) this grant opens'),
    databases: stringList().refine((dbs) => !(dbs.includes('*') && dbs.length > 1), { error: '"*" (every database of the upstream) must be the only entry' })
      .describe('database aliases of that upstream, or ["*"] for all of them'),
    roles: stringList().describe('roles of that upstream the matching tokens may use'),
    maxConnections: integer(1, 1_000_000).optional().describe('at most this many client sessions under this grant at once (default: not limited)'),
    maxSessionDuration: duration({ min: 1000 }).optional().describe('a session under this grant ends this long after it started, at a statement boundary (default: not limited)'),
    statementTimeout: duration({ min: 1 }).optional()
      .describe('each statement is cancelled after this (PostgreSQL statement_timeout, MariaDB max_statement_time, MySQL max_execution_time); set upstream for the session and undone on release'),
  }).transform((grant) => withMsKeys(grant, ['maxSessionDuration', 'statementTimeout']));
}

function auditSchema(ctx: ConfigContext) {
  return section({
    file: text().transform((file) => (file === 'stdout' || file === 'stderr' ? file : absolute(ctx, file))).prefault('stdout')
      .describe('stdout, stderr or a file path (JSON lines)'),
    queries: bool().default(true).describe("log each query's text"),
    maxQueryBytes: integer(0, 1024 * 1024).default(4096).describe('query text beyond this many bytes is cut'),
    onFailure: oneOf(['refuse', 'continue'] as const).default('refuse')
      .describe('while the audit log cannot be written: refuse new sessions (and fail readiness), or continue without it'),
  }).describe('The audit log: one JSON line per connection, denial and (optionally) query; never contains tokens or passwords.');
}

function sessionSchema() {
  return section({
    authTimeout: duration({ min: 100 }).prefault('15s').describe('an agent must finish the handshake (startup and token) within this'),
    expiryGrace: duration().prefault('0s').describe("sessions end this long after the token's exp"),
    idleTimeout: duration({ min: 1000 }).optional().describe('end a session whose client sends nothing for this long outside a transaction (default: never)'),
    idleInTransactionTimeout: duration({ min: 1000 }).optional().describe('end a session whose client sends nothing for this long inside a transaction (default: never)'),
    shutdownGrace: duration().prefault('30s').describe('on SIGTERM, sessions may finish for this long (each ends as soon as it is idle outside a transaction); then the rest are ended'),
  }).transform((session) => withMsKeys(session, ['authTimeout', 'expiryGrace', 'idleTimeout', 'idleInTransactionTimeout', 'shutdownGrace']));
}

function limitsSchema() {
  return section({
    maxClientConnections: integer(1, 1_000_000).optional().describe('at most this many client connections to the whole gateway (default: not limited)'),
    maxConnectionsPerIdentity: integer(1, 1_000_000).optional().describe("at most this many client sessions per token subject (sub) (default: not limited)"),
  }).describe('Caps on client connections; per-grant caps are the grants\' maxConnections.');
}

function adminSchema(ctx: ConfigContext) {
  return section({
    tokenFile: filePath(ctx).optional().describe('a file holding the bearer token for automation and the tokengate CLI (keep it chmod 600; $CREDENTIALS_DIRECTORY paths work)'),
    match: matchSchema().optional().describe('operators: an access token from the configured issuer that matches this (same syntax as a grant\'s match) may use the admin API'),
    metricsRequireAuth: bool().default(false).describe('put GET /metrics behind the admin bearer too'),
  }, { omitAbsent: true }).describe('Who may use the admin API on listen.admin (sessions, kill, revocations, reload).');
}

function stateSchema(ctx: ConfigContext) {
  return section({
    dir: filePath(ctx).prefault('/var/lib/tokengate').describe('where tokengate keeps state that survives a restart (revocations); systemd\'s StateDirectory'),
  }).describe('Local state.');
}

const REDIS_EXAMPLE = 'expected "host:port" such as redis-1.internal:6379';

/** "host:port" of a Redis node or Sentinel (port required: 6379 and 26379 are both common). */
function redisAddress() {
  return text().transform((t, c) => {
    try {
      const hp = parseHostPort(t.trim());
      return { host: hp.host, port: hp.port };
    } catch (err) {
      if (!(err instanceof HostPortError)) throw err;
      c.addIssue({ code: 'custom', message: `${REDIS_EXAMPLE}: ${err.message}` });
      return z.NEVER;
    }
  });
}

/** redis:// or rediss:// with a host; a password in it is refused like any inline secret. */
function redisUrl() {
  return text().superRefine((t, c) => {
    let parsed: URL;
    try {
      parsed = new URL(t);
    } catch {
      c.addIssue({ code: 'custom', message: 'expected a URL such as redis://redis.internal:6379/0 or rediss://redis.internal:6380' });
      return;
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') c.addIssue({ code: 'custom', message: `expected a redis:// or rediss:// URL, got ${parsed.protocol}//...` });
    else if (!parsed.hostname) c.addIssue({ code: 'custom', message: 'the URL has no host' });
    if (parsed.password) c.addIssue({ code: 'custom', message: 'the URL holds a password (not shown): remove it and use redis.password: ${ENV_VAR} or redis.passwordFile', input: undefined });
  });
}

const REDIS_MODES = ['url', 'sentinels', 'nodes'] as const;

function redisSchema(ctx: ConfigContext) {
  const passwordFile = (iss: z.core.$ZodRawIssue): string => `expected a file path, got ${typeOf(iss.input)}`;
  return section({
    url: redisUrl().optional().describe('one Redis server: redis://host:port/db, or rediss:// for TLS'),
    sentinels: z.array(redisAddress(), { error: expected('a list of "host:port" Sentinel addresses') }).min(1).optional()
      .describe('Redis Sentinel: the Sentinels\' host:port addresses (with name)'),
    name: text().optional().describe('with sentinels: the name of the monitored primary (sentinel monitor NAME ...)'),
    nodes: z.array(redisAddress(), { error: expected('a list of "host:port" Redis Cluster node addresses') }).min(1).optional()
      .describe('Redis Cluster: some of its nodes\' host:port addresses'),
    username: text().optional().describe('the ACL user (default: the default user)'),
    password: envReferenceSchema().optional().describe('the password, from an environment variable: exactly ${NAME} (inline passwords are refused)'),
    passwordFile: text(passwordFile).optional().describe('a file holding the password (trailing newline stripped; $CREDENTIALS_DIRECTORY paths work)'),
    tls: bool().optional().describe('TLS to Redis (default: true for rediss:// URLs, else false); for Sentinel it applies to the Sentinels and the servers'),
    caFile: filePath(ctx).optional().describe('the CA certificate (PEM) that signed the Redis server certificates (default: the system CAs)'),
    keyPrefix: text().default('tokengate:').describe('prefix of every key and channel tokengate uses; give each tokengate cluster sharing a Redis its own'),
    onUnavailable: oneOf(['fail-closed', 'fail-open'] as const).default('fail-closed')
      .describe('while Redis cannot be reached: fail-closed refuses new connections (live sessions continue, known revocations keep applying); fail-open serves with this instance\'s own state'),
    connectTimeout: duration({ min: 100 }).prefault('5s').describe('how long a connection attempt to Redis may take'),
    commandTimeout: duration({ min: 10 }).prefault('1s').describe('how long a Redis command (a login\'s lease, a cross-instance request) may take before it counts as Redis being unavailable'),
    leaseTtl: duration({ min: 1000 }).prefault('30s').describe('a crashed instance\'s connection counts expire after this (live instances renew theirs every third of it)'),
  }, { sensitive: true }).superRefine((r, c) => {
    const given = REDIS_MODES.filter((k) => r[k] !== undefined);
    if (given.length !== 1) {
      c.addIssue({ code: 'custom', message: given.length === 0 ? 'needs one of url (one server), sentinels + name (Sentinel) or nodes (Cluster)' : `set only one of ${given.join(', ')}` });
    }
    if (r.sentinels !== undefined && r.name === undefined) c.addIssue({ code: 'custom', path: ['name'], message: 'is required with sentinels: the name of the monitored primary' });
    if (r.name !== undefined && r.sentinels === undefined) c.addIssue({ code: 'custom', path: ['name'], message: 'is only used with sentinels' });
    if (r.password !== undefined && r.passwordFile !== undefined) c.addIssue({ code: 'custom', message: 'set either password or passwordFile, not both' });
    if (r.url?.startsWith('redis://') && r.tls === true) c.addIssue({ code: 'custom', path: ['tls'], message: 'a redis:// URL is plaintext: write rediss:// for TLS' });
  }, whenReadable('url', 'sentinels', 'name', 'nodes', 'password', 'passwordFile', 'tls')).transform((r, c) => {
    let password: Secret | undefined;
    try {
      password = r.password === undefined && r.passwordFile === undefined ? undefined : resolvePassword(r, ctx);
    } catch (err) {
      if (!(err instanceof SecretError)) throw err;
      c.addIssue({ code: 'custom', path: [r.password !== undefined ? 'password' : 'passwordFile'], message: err.message, input: undefined });
      return z.NEVER;
    }
    const { passwordFile: _file, ...rest } = r;
    return { ...withMsKeys(rest, ['connectTimeout', 'commandTimeout', 'leaseTtl']), password, tls: r.tls ?? r.url?.startsWith('rediss://') ?? false };
  }).describe('Shared state for several tokengate instances (hosts or workers): revocations, connection caps, cancel routing, the session list. Without it each instance works alone.');
}

function logSchema() {
  return section({
    level: oneOf(['error', 'warn', 'info', 'debug'] as const).default('info').describe('the operational log\'s level (TOKENGATE_LOG_LEVEL overrides it)'),
    format: oneOf(['auto', 'json', 'text'] as const).default('auto').describe('auto: readable text on a terminal, JSON lines otherwise (journald)'),
  }).describe('The operational log on stderr (not the audit log).');
}

/** The number of worker processes; "auto" is one per CPU (os.availableParallelism()). */
function workersSchema() {
  const error = expected('an integer 1-256 or "auto"');
  const count = z.number({ error }).refine((n) => Number.isInteger(n) && n >= 1 && n <= 256, { error }).meta({ type: 'integer', minimum: 1, maximum: 256 });
  return z.union([z.literal('auto', { error }), count], { error })
    .transform((n) => (n === 'auto' ? Math.min(256, availableParallelism()) : n))
    .describe('worker processes sharing the listeners under one supervising process (auto: one per CPU); more than 1 needs shared state (redis)');
}

/** The whole config, validated and resolved against `ctx`. */
export function configSchema(ctx: ConfigContext) {
  return section({
    listen: listenSchema(),
    tls: tlsSchema(ctx).prefault({}),
    oidc: oidcSchema(),
    upstreams: nameMap(name('upstream'), upstreamSchema(ctx), {
      what: 'a mapping of upstream name -> { protocol, host, port, databases, roles }',
      empty: 'is required: a mapping of upstream name -> { protocol, host, port, databases, roles }, got an empty mapping',
    }).transform(withNames).describe('The real databases, and the credentials tokengate uses for them. Agents never see these.'),
    grants: z.array(grantSchema(), {
      error: (iss) => `expected a list of grants (- name: ..., match: ..., upstream: ..., databases: [...], roles: [...]), got ${shown(iss.input)}`,
    }).prefault([]).describe('Who may use what: a token may use a (database, role) when a grant that matches it lists both.'),
    audit: auditSchema(ctx).prefault({}),
    session: sessionSchema().prefault({}).describe('Limits on agent sessions.'),
    limits: limitsSchema().prefault({}),
    admin: adminSchema(ctx).prefault({}),
    state: stateSchema(ctx).prefault({}),
    redis: redisSchema(ctx).optional(),
    log: logSchema().prefault({}),
    workers: workersSchema().prefault(1),
  }).superRefine(checkReferences, whenReadable())
    .superRefine((config, ctx) => {
      // Fail closed: workers without shared state would each see only part of the revocations and caps.
      const problem = sharedStateProblem(config, config.workers);
      if (problem) ctx.addIssue({ code: 'custom', path: ['workers'], message: problem });
    }, whenReadable('workers', 'redis'))
    .transform((config) => ({ source: ctx.source, ...config }))
    .describe('tokengate configuration: listeners, the identity provider, upstream databases and who may reach them.');
}

/** The validated, typed configuration. Durations are milliseconds; secrets are resolved. */
export type Config = z.output<ReturnType<typeof configSchema>>;
export type ListenConfig = Config['listen'];
export type HostPort = NonNullable<ListenConfig['postgres']>;
export type TlsConfig = Config['tls'];
export type OidcConfig = Config['oidc'];
export type UpstreamConfig = Config['upstreams'][string];
export type Protocol = (typeof PROTOCOLS)[number];
export type UpstreamTlsMode = UpstreamConfig['tls'];
export type PoolConfig = UpstreamConfig['pool'];
export type RoleConfig = UpstreamConfig['roles'][string];
export type GrantConfig = Config['grants'][number];
export type GrantMatch = GrantConfig['match'];
export type AuditConfig = Config['audit'];
export type SessionConfig = Config['session'];
export type LimitsConfig = Config['limits'];
export type AdminConfig = Config['admin'];
export type StateConfig = Config['state'];
export type LogConfig = Config['log'];
export type RedisConfig = NonNullable<Config['redis']>;
export type ProxyProtocolConfig = NonNullable<ListenConfig['proxyProtocol']>;
