import { AdminAuth } from '../admin/auth';
import { Readiness, tcpProbe } from '../admin/readiness';
import { AdminServer } from '../admin/server';
import { LocalSessionDirectory } from '../admin/sessionDirectory';
import { AuditLog, type AuditSink } from '../audit/auditLog';
import { loadConfig } from '../config/load';
import type { Config, HostPort, ProxyProtocolConfig, UpstreamConfig } from '../config/schema';
import { TokenVerifier } from '../identity/verifier';
import { configureLog, log } from '../log';
import { MysqlConnectionRegistry } from '../mysql/connectionIds';
import { MysqlListener } from '../mysql/listener';
import { MysqlPoolRegistry, probeMysqlServerVersion } from '../mysql/pool';
import { MysqlServerVersion } from '../mysql/serverVersion';
import { AddressSet } from '../net/addressSet';
import { PROXY_HEADER_TIMEOUT_MS, type ProxyProtocolOptions } from '../net/clientPeer';
import { loadServerTlsContext } from '../net/tlsContext';
import type { TcpListener } from '../net/tcpListener';
import { PgListener } from '../postgres/listener';
import { PgPoolRegistry } from '../postgres/pool';
import { GatewayMetrics } from '../metrics/metrics';
import { keepNextTickShape } from '../v8/nextTickShape';
import { Admission } from './admission';
import { systemClock, type Clock } from './clock';
import type { SessionDeps } from './clientSession';
import { ConfigStore, type ConfigChange } from './configStore';
import { PoolRegistry } from './poolRegistry';
import { endWithdrawnSessions } from './accessReview';
import { reloadConfig, type ReloadOutcome } from './reload';
import { drainSessions, type Drain } from './shutdown';
import { instanceIdentity, type InstanceIdentity } from './instance';
import { SessionRegistry } from './sessionRegistry';
import { inProcessState, type SharedState } from './state';
import { RedisState } from './state/redis';
import { registerRedisMetrics } from './state/redis/metrics';
import { openRevocationFile } from './state/revocationFile';
import { refuses, type NewRevocation, type Revocation } from './state/revocations';

export interface GatewayOptions {
  /** Replace the audit destination (tests capture it in memory). */
  auditTransport?: AuditSink;
  /** Timers and pools run on this clock (tests pass a manual one). */
  clock?: Clock;
  /** Where revocations, cancel keys, connection ids and leases live (in this process by default). */
  state?: SharedState;
  /** How reload() reads the config again (default: loadConfig on the config's source file). */
  loadConfig?: (source: string) => Config;
  /** This process's instance id (GET /sessions' `instance`; the worker supervisor gives one per worker); default: 4 random hex digits. */
  instanceId?: string;
}

/** A running gateway: its listeners' addresses, the objects operations work through, and a way to stop it. */
export interface Gateway {
  postgres?: HostPort;
  mysql?: HostPort;
  /** The admin API's address, when listen.admin is set. */
  admin?: HostPort;
  config: ConfigStore;
  sessions: SessionRegistry;
  pools: PoolRegistry;
  state: SharedState;
  /** Which instance this gateway is. */
  instance: InstanceIdentity;
  /** The shared state in Redis, when the config has a redis: section. */
  redis?: RedisState;
  audit: AuditLog;
  /** GET /readyz: the listeners, the issuer's keys, the audit log, each upstream; add more with readiness.add(name, check). */
  readiness: Readiness;
  /** The Prometheus metrics (GET /metrics); collected only when listen.admin is set, the one place they are served. */
  metrics?: GatewayMetrics;
  /** The token verifier for the current issuer settings. */
  verifier(): TokenVerifier;
  /** Records a revocation made now (bounded by oidc.maxTokenLifetime); the live sessions it refuses end at once. */
  revoke(input: NewRevocation): { revocation: Revocation; sessionsEnded: number };
  /** Resolves once the current verifier's first fetch of the issuer's keys is over (loaded or failed). */
  keysFetched(): Promise<void>;
  /** Reads the config again and applies it (SIGHUP, POST /reload); a broken file changes nothing. */
  reload(): Promise<ReloadOutcome>;
  /** Reopens the audit file (after log rotation renamed it: SIGUSR2, POST /reopen-logs). */
  reopenLogs(): Promise<void>;
  /** False while the audit log cannot be written (readiness; with audit.onFailure refuse, new sessions are refused). */
  auditHealthy(): boolean;
  /**
   * Stops accepting, lets sessions finish for `graceMs` (default session.shutdownGraceMs), each
   * ending as soon as it is idle outside a transaction, ends the rest, closes the pools and the
   * audit log. Calling close() meanwhile ends the grace at once.
   */
  shutdown(graceMs?: number): Promise<void>;
  /** Ends every session now (cancelling running statements upstream first), closes the listeners, pools and audit log. */
  close(): Promise<void>;
}

/** How long the MySQL listener waits at startup for the upstream's greeting (its version string). */
const VERSION_PROBE_TIMEOUT_MS = 3000;

/** Wire config -> store, verifier, admission, pools, registry, listeners; start listening. */
export async function startGateway(initial: Config, opts: GatewayOptions = {}): Promise<Gateway> {
  keepNextTickShape(); // bin/tokengate.js does it first thing; here for programs that embed the gateway
  const clock = opts.clock ?? systemClock;
  const store = new ConfigStore(initial);
  const config = (): Config => store.current();
  const instance = instanceIdentity(opts.instanceId, clock.now());
  // With redis: the instances share their state there. Otherwise revocations are kept in
  // state.dir, so they survive a restart; with the admin API on it must be writable.
  const redis = !opts.state && initial.redis ? new RedisState(initial.redis, instance, clock) : undefined;
  await redis?.start();
  // Revocations are made through the admin API: with it they are kept in state.dir, so they survive a restart.
  const state = opts.state ?? redis?.state ??
    (initial.listen.admin !== undefined ? { ...inProcessState(), revocations: openRevocationFile(initial.state.dir, clock.now(), { writable: true }) } : inProcessState());
  const audit = new AuditLog(initial.audit, opts.auditTransport);
  const registry = new SessionRegistry();
  const pools = new PoolRegistry(clock);
  const metrics = initial.listen.admin ? new GatewayMetrics({ sessions: registry, pools, revocations: state.revocations, clock }) : undefined;
  if (metrics) audit.onWrite(metrics.audited);
  if (metrics && redis) registerRedisMetrics(metrics.registry, redis);
  const verifierOptions = { observer: metrics };
  let verifier = new TokenVerifier(initial.oidc, verifierOptions);
  // Warm discovery and JWKS, without making startup depend on the IdP being up.
  let keysFetched = prefetch(verifier);
  let tlsContext = loadServerTlsContext(initial.tls);
  let mysqlTarget = firstMysqlUpstream(initial);
  let mysqlVersion = serverVersionFor(mysqlTarget);

  store.on('swap', (next, _previous, change) => {
    if (change.oidc) {
      verifier = new TokenVerifier(next.oidc, verifierOptions); // its verified-token cache starts empty
      keysFetched = prefetch(verifier);
    }
    if (change.tls) tlsContext = reloadTls(next, tlsContext);
    if (change.audit) audit.reconfigure(next.audit);
    if (upstreamsChanged(change)) {
      const retired = pools.retireStale(next);
      if (retired.length) log.info(`upstream settings changed: pools ${retired.join(', ')} close as their sessions end`);
      const first = firstMysqlUpstream(next);
      if (!sameServer(first, mysqlTarget)) {
        mysqlTarget = first;
        mysqlVersion = serverVersionFor(first);
      }
    }
    if (change.log) configureLog(next.log);
    // Continuous access evaluation: the live sessions the new grants and upstreams no longer admit end now.
    const withdrawn = change.grants || upstreamsChanged(change) ? endWithdrawnSessions(next, registry) : [];
    if (withdrawn.length) log.warn(`the new grants no longer admit ${withdrawn.length} live session(s); ended: ${withdrawn.join(', ')}`);
    if (change.listen) log.warn('listen addresses changed in the config; they take effect when tokengate is restarted');
    if (change.workers) log.warn(`workers changed in the config (now ${next.workers}); it takes effect when tokengate is restarted`);
    if (change.state) log.warn(`state.dir changed in the config; revocations stay in ${initial.state.dir} until tokengate is restarted`);
    if (change.redis) log.warn('the redis section changed in the config; tokengate keeps its current Redis connection until it is restarted');
    if (change.admin) adminAuth?.refresh();
    if (upstreamsChanged(change)) addUpstreamChecks(readiness, next);
  });

  // The count of sessions each revocation ended, for POST /revocations (the store emits 'added' synchronously).
  const endedBy = new WeakMap<Revocation, number>();
  state.revocations.on('added', (r) => endedBy.set(r, endRevokedSessions(registry, r, clock.now())));
  const adminAuth = initial.listen.admin === undefined ? undefined : new AdminAuth({ admin: () => config().admin, verifier: () => verifier, revocations: state.revocations, now: () => clock.now() });
  let closing = false;
  const readiness = new Readiness();
  readiness.add('listeners', () => (closing ? { ok: false, detail: 'shutting down' } : { ok: true }));
  readiness.add('issuer', () => issuerKeysCheck(verifier));
  // With audit.onFailure: refuse, new sessions are refused while the audit log cannot be written.
  readiness.add('audit', () => (audit.admitsSessions ? { ok: true } : { ok: false, detail: `the audit log ${config().audit.file} cannot be written; new sessions are refused (audit.onFailure: refuse)` }));
  addUpstreamChecks(readiness, initial);
  if (redis) readiness.add('redis', () => redis.check());

  const admission = new Admission({
    config, verifier: () => verifier, revocations: state.revocations, leases: state.leases, clock,
    auditWritable: () => audit.admitsSessions, onAcquire: metrics && ((...a) => metrics.acquired(...a)),
    sharedStateRefusal: redis && (() => redis.refusal()),
  });
  const deps: SessionDeps = { config, admission, registry, audit, clock, tlsContext: () => tlsContext, metrics };
  const proxy = proxyProtocolOptions(initial.listen.proxyProtocol, config);
  const listeners: TcpListener[] = [];
  const mysqlConnections = new MysqlConnectionRegistry(state.connectionIds);
  const directory = redis ? redis.attach({ registry, mysql: mysqlConnections }) : new LocalSessionDirectory(registry, instance.id);
  let postgres: HostPort | undefined;
  let mysql: HostPort | undefined;
  try {
    if (initial.listen.postgres) {
      const listener = new PgListener(initial.listen.postgres, { ...deps, pools: new PgPoolRegistry({}, pools), cancelKeys: state.cancelKeys }, proxy);
      postgres = await listener.listen();
      listeners.push(listener);
    }
    if (initial.listen.mysql) {
      const listener = new MysqlListener(initial.listen.mysql,
        { ...deps, pools: new MysqlPoolRegistry({}, pools), connections: mysqlConnections }, () => mysqlVersion, proxy);
      mysql = await listener.listen();
      listeners.push(listener);
    }
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    await pools.closeAll();
    await redis?.close();
    throw err;
  }

  let adminServer: AdminServer | undefined;
  let drain: Drain | undefined;
  let shuttingDown: Promise<void> | undefined;
  const shutdown = (graceMs: number): Promise<void> => {
    if (shuttingDown) return shuttingDown;
    closing = true;
    const stopped = Promise.all(listeners.map((l) => l.close()));
    const sessionsDone = (drain = drainSessions(registry, clock, graceMs)).done;
    // The admin API answers while sessions drain (readiness says "shutting down"), then closes.
    shuttingDown = Promise.all([stopped, sessionsDone]).then(async () => {
      await adminServer?.close();
      await pools.closeAll();
      await redis?.close();
      await audit.close();
    });
    return shuttingDown;
  };

  const gateway: Gateway = {
    postgres,
    mysql,
    config: store,
    sessions: registry,
    pools,
    state,
    instance,
    redis,
    audit,
    readiness,
    metrics,
    verifier: () => verifier,
    revoke(input) {
      const revocation = state.revocations.add(input, clock.now(), config().oidc.maxTokenLifetimeMs);
      return { revocation, sessionsEnded: endedBy.get(revocation) ?? 0 };
    },
    keysFetched: () => keysFetched,
    async reload() {
      const outcome = reloadConfig(store, opts.loadConfig ?? loadConfig);
      metrics?.reloaded(outcome.ok);
      // The token file may have been rotated without a config change: read it on every reload.
      if (outcome.ok && !outcome.changed.includes('admin')) adminAuth?.refresh();
      // The certificate files may have been replaced under the same names (a renewal): read them again.
      if (outcome.ok && !outcome.changed.includes('tls')) tlsContext = reloadTls(store.current(), tlsContext);
      if (outcome.ok) log.info(`config reloaded from ${store.current().source}: ${outcome.changed.length ? `changed ${outcome.changed.join(', ')}` : 'nothing changed'}`);
      else log.error(`config reload failed; the running config is kept:\n${outcome.problems.map((p) => `  - ${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n')}`);
      return outcome;
    },
    reopenLogs: () => audit.reopen(),
    auditHealthy: () => audit.healthy,
    shutdown: (graceMs = store.current().session.shutdownGraceMs) => shutdown(graceMs),
    close() {
      // No grace (or the end of one): idle sessions end now, running statements are cancelled upstream first.
      const closed = shutdown(0);
      drain!.now();
      return closed;
    },
  };

  if (initial.listen.admin && adminAuth) {
    adminServer = new AdminServer(initial.listen.admin, {
      config, sessions: directory, revocations: state.revocations, readiness, auth: adminAuth, audit, clock,
      revoke: (input) => gateway.revoke(input),
      reload: () => gateway.reload(),
      metrics: () => gateway.metrics,
      reopenLogs: () => gateway.reopenLogs(),
    });
    try {
      gateway.admin = await adminServer.listen();
    } catch (err) {
      await Promise.all(listeners.map((l) => l.close()));
      await pools.closeAll();
      await redis?.close();
      throw err;
    }
  }
  return gateway;
}

/** listen.proxyProtocol for the client listeners; a trusted balancer gets at most session.authTimeout for its header. */
function proxyProtocolOptions(settings: ProxyProtocolConfig | undefined, config: () => Config): ProxyProtocolOptions | undefined {
  if (!settings) return undefined;
  return { trusted: new AddressSet(settings.trusted), timeoutMs: () => Math.min(PROXY_HEADER_TIMEOUT_MS, config().session.authTimeoutMs) };
}

/** Ready once the issuer's keys were fetched; while they are not, each (cached) check tries again. */
async function issuerKeysCheck(verifier: TokenVerifier): Promise<{ ok: boolean; detail?: string }> {
  if (!verifier.keysLoaded()) await verifier.prefetch();
  return verifier.keysLoaded() ? { ok: true } : { ok: false, detail: `the issuer's signing keys are not loaded: ${verifier.keysFailure ?? 'not fetched yet'}` };
}

/** One check per upstream, "upstream:NAME": a TCP connection within the upstream's pool.acquireTimeout. */
function addUpstreamChecks(readiness: Readiness, config: Config): void {
  for (const name of readiness.names()) if (name.startsWith('upstream:')) readiness.remove(name);
  for (const [name, u] of Object.entries(config.upstreams)) {
    readiness.add(`upstream:${name}`, () => tcpProbe(u.host, u.port, u.pool.acquireTimeoutMs, `upstreams.${name}.pool.acquireTimeout`));
  }
}

function prefetch(verifier: TokenVerifier): Promise<void> {
  return verifier.prefetch().catch((err: Error) => {
    log.warn(`could not reach the OIDC issuer yet: ${err.message}; will retry on the first connection`);
  });
}

/** A certificate that cannot be read keeps the one in use, so a bad reload does not take TLS away. */
function reloadTls(next: Config, current: ReturnType<typeof loadServerTlsContext>): ReturnType<typeof loadServerTlsContext> {
  try {
    return loadServerTlsContext(next.tls);
  } catch (err) {
    log.error(`cannot load the new TLS certificate (${(err as Error).message}); clients keep getting the previous one. Fix tls.certFile/tls.keyFile`);
    return current;
  }
}

function upstreamsChanged(change: ConfigChange): boolean {
  const u = change.upstreams;
  return u.added.length > 0 || u.removed.length > 0 || u.changed.length > 0;
}

/** Clients get the version string of the first MySQL upstream (drivers switch quirks on it). */
function firstMysqlUpstream(config: Config): UpstreamConfig | undefined {
  return Object.values(config.upstreams).find((u) => u.protocol === 'mysql');
}

function sameServer(a: UpstreamConfig | undefined, b: UpstreamConfig | undefined): boolean {
  return a?.host === b?.host && a?.port === b?.port;
}

function serverVersionFor(first: UpstreamConfig | undefined): MysqlServerVersion {
  return new MysqlServerVersion(first ? () => probeMysqlServerVersion(first.host, first.port, VERSION_PROBE_TIMEOUT_MS) : undefined);
}

/** A new revocation ends the live sessions whose token it refuses; returns how many. */
function endRevokedSessions(registry: SessionRegistry, r: Revocation, now: number): number {
  const message = `an operator revoked this access${r.reason ? ` (reason: ${r.reason.slice(0, 200)})` : ''}; tokengate ended the session`;
  let ended = 0;
  for (const s of registry.select()) {
    const i = s.info();
    if (i.sub === undefined) continue;
    const token = { sub: i.sub, clientId: i.cid, jti: i.jti, issuedAt: i.tokenIssuedAt === undefined ? undefined : i.tokenIssuedAt / 1000 };
    if (refuses(r, token, now)) {
      s.end('revoked', message, r.by);
      ended++;
    }
  }
  return ended;
}
