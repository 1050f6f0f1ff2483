import { AuditLog, type AuditSink } from '../audit/auditLog';
import { loadConfig } from '../config/load';
import type { Config, HostPort, UpstreamConfig } from '../config/schema';
import { TokenVerifier } from '../identity/verifier';
import { log } from '../log';
import { MysqlConnectionRegistry } from '../mysql/connectionIds';
import { MysqlListener } from '../mysql/listener';
import { MysqlPoolRegistry, probeMysqlServerVersion } from '../mysql/pool';
import { MysqlServerVersion } from '../mysql/serverVersion';
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
import { reloadConfig, type ReloadOutcome } from './reload';
import { SessionRegistry } from './sessionRegistry';
import { inProcessState, type SharedState } from './state';
import { refuses, type Revocation } from './state/revocations';

export interface GatewayOptions {
  /** Replace the audit destination (tests capture it in memory). */
  auditTransport?: AuditSink;
  /** Timers and pools run on this clock (tests pass a manual one). */
  clock?: Clock;
  /** Where revocations, cancel keys, connection ids and leases live (in this process by default). */
  state?: SharedState;
  /** How reload() reads the config again (default: loadConfig on the config's source file). */
  loadConfig?: (source: string) => Config;
}

/** A running gateway: its listeners' addresses, the objects operations work through, and a way to stop it. */
export interface Gateway {
  postgres?: HostPort;
  mysql?: HostPort;
  config: ConfigStore;
  sessions: SessionRegistry;
  pools: PoolRegistry;
  state: SharedState;
  audit: AuditLog;
  /** The Prometheus metrics (GET /metrics); collected only when listen.admin is set, the one place they are served. */
  metrics?: GatewayMetrics;
  /** The token verifier for the current issuer settings. */
  verifier(): TokenVerifier;
  /** Reads the config again and applies it (SIGHUP, POST /reload); a broken file changes nothing. */
  reload(): Promise<ReloadOutcome>;
  close(): Promise<void>;
}

/** How long the MySQL listener waits at startup for the upstream's greeting (its version string). */
const VERSION_PROBE_TIMEOUT_MS = 3000;
const SHUTDOWN_MESSAGE = 'tokengate is shutting down; reconnect in a moment';

/** Wire config -> store, verifier, admission, pools, registry, listeners; start listening. */
export async function startGateway(initial: Config, opts: GatewayOptions = {}): Promise<Gateway> {
  keepNextTickShape(); // bin/tokengate.js does it first thing; here for programs that embed the gateway
  const clock = opts.clock ?? systemClock;
  const store = new ConfigStore(initial);
  const config = (): Config => store.current();
  const state = opts.state ?? inProcessState();
  const audit = new AuditLog(initial.audit, opts.auditTransport);
  const registry = new SessionRegistry();
  const pools = new PoolRegistry(clock);
  const metrics = initial.listen.admin ? new GatewayMetrics({ sessions: registry, pools, revocations: state.revocations, clock }) : undefined;
  if (metrics) audit.onWrite(metrics.audited);
  const verifierOptions = { observer: metrics };
  let verifier = new TokenVerifier(initial.oidc, verifierOptions);
  let tlsContext = loadServerTlsContext(initial.tls);
  let mysqlTarget = firstMysqlUpstream(initial);
  let mysqlVersion = serverVersionFor(mysqlTarget);
  // Warm discovery and JWKS, without making startup depend on the IdP being up.
  prefetch(verifier);

  store.on('swap', (next, _previous, change) => {
    if (change.oidc) {
      verifier = new TokenVerifier(next.oidc, verifierOptions);
      prefetch(verifier);
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
    if (change.listen) log.warn('listen addresses changed in the config; they take effect when tokengate is restarted');
  });

  state.revocations.on('added', (r) => endRevokedSessions(registry, r, clock.now()));

  const admission = new Admission({
    config, verifier: () => verifier, revocations: state.revocations, leases: state.leases, clock, onAcquire: metrics && ((...a) => metrics.acquired(...a)),
  });
  const deps: SessionDeps = { config, admission, registry, audit, clock, tlsContext: () => tlsContext, metrics };
  const listeners: TcpListener[] = [];
  let postgres: HostPort | undefined;
  let mysql: HostPort | undefined;
  try {
    if (initial.listen.postgres) {
      const listener = new PgListener(initial.listen.postgres, { ...deps, pools: new PgPoolRegistry({}, pools), cancelKeys: state.cancelKeys });
      postgres = await listener.listen();
      listeners.push(listener);
    }
    if (initial.listen.mysql) {
      const listener = new MysqlListener(initial.listen.mysql,
        { ...deps, pools: new MysqlPoolRegistry({}, pools), connections: new MysqlConnectionRegistry(state.connectionIds) }, () => mysqlVersion);
      mysql = await listener.listen();
      listeners.push(listener);
    }
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    await pools.closeAll();
    throw err;
  }

  return {
    postgres,
    mysql,
    config: store,
    sessions: registry,
    pools,
    state,
    audit,
    metrics,
    verifier: () => verifier,
    async reload() {
      const outcome = reloadConfig(store, opts.loadConfig ?? loadConfig);
      metrics?.reloaded(outcome.ok);
      if (outcome.ok) log.info(`config reloaded from ${store.current().source}: ${outcome.changed.length ? `changed ${outcome.changed.join(', ')}` : 'nothing changed'}`);
      else log.error(`config reload failed; the running config is kept:\n${outcome.problems.map((p) => `  - ${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n')}`);
      return outcome;
    },
    async close() {
      const closed = Promise.all(listeners.map((l) => l.close()));
      registry.endAll('shutdown', SHUTDOWN_MESSAGE);
      await closed;
      await pools.closeAll();
      await audit.close();
    },
  };
}

function prefetch(verifier: TokenVerifier): void {
  verifier.prefetch().catch((err: Error) => log.warn(`could not reach the OIDC issuer yet: ${err.message}; will retry on the first connection`));
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

/** A new revocation ends the live sessions whose token it refuses. */
function endRevokedSessions(registry: SessionRegistry, r: Revocation, now: number): void {
  const message = `an operator revoked this access${r.reason ? ` (reason: ${r.reason.slice(0, 200)})` : ''}; tokengate ended the session`;
  for (const s of registry.select()) {
    const i = s.info();
    if (i.sub === undefined) continue;
    const token = { sub: i.sub, clientId: i.cid, jti: i.jti, issuedAt: i.tokenIssuedAt === undefined ? undefined : i.tokenIssuedAt / 1000 };
    if (refuses(r, token, now)) s.end('revoked', message);
  }
}
