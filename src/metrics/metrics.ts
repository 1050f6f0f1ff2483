import { Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';
import { registerProcessMetrics } from './processMetrics';
import type { AuditEvent } from '../audit/events';
import type { Protocol } from '../config/schema';
import type { Clock } from '../core/clock';
import type { PoolRegistry } from '../core/poolRegistry';
import type { SessionRegistry } from '../core/sessionRegistry';
import type { RevocationStore } from '../core/state/revocations';
import type { VerificationObserver } from '../identity/verifier';
import { QueryStats } from './queryStats';
import { AccumulatedHistogram } from './accumulatedHistogram';
import { GaugeTally } from './tally';

/** What the metrics read when scraped. */
export interface MetricsSources {
  sessions: SessionRegistry;
  pools: PoolRegistry;
  revocations: RevocationStore;
  clock: Clock;
}

/** What a client session needs: its query counter, resolved once when it is accepted. */
export interface SessionMetrics {
  queryStats(protocol: Protocol, grant: string): QueryStats;
}

/** Seconds; acquiring includes opening a new upstream connection when no idle one is left. */
const ACQUIRE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * tokengate's Prometheus metrics (docs/operations.md, "Metrics"), in a registry of their own so
 * that several gateways in one process do not share counters. Counters are fed at single points
 * (audit records, the verifier, admission, reload); gauges are computed when scraped from the
 * session registry, the pools and the revocation store. Labels come only from config names and
 * fixed reason codes, never from a token's claims or a client address.
 */
export class GatewayMetrics implements SessionMetrics, VerificationObserver {
  readonly registry = new Registry();
  #renderer: (() => Promise<string>) | undefined;
  readonly #queries = new Map<string, { protocol: Protocol; grant: string; stats: QueryStats }>();
  readonly #ended = new Map<Protocol, { fromClient: number; toClient: number }>();
  readonly #accepted: Counter<'protocol' | 'grant'>;
  readonly #rejected: Counter<'protocol' | 'reason'>;
  readonly #sessionsEnded: Counter<'protocol' | 'reason'>;
  readonly #verifications: Counter<'result' | 'cache'>;
  readonly #jwks: Counter<'result'>;
  readonly #reloads: Counter<'result'>;
  readonly #acquireWait: Histogram<'protocol' | 'upstream' | 'role'>;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    const queries = this.#queries;
    const ended = this.#ended;
    registerProcessMetrics(this.registry);

    this.#accepted = new Counter({
      name: 'tokengate_connections_accepted_total', help: 'Client connections admitted (token verified, grant found, upstream connection acquired).',
      labelNames: ['protocol', 'grant'], registers,
    });
    this.#rejected = new Counter({
      name: 'tokengate_connections_rejected_total', help: 'Client connections refused, by audit reason (expired, role_not_granted, revoked, pool_exhausted, ...).',
      labelNames: ['protocol', 'reason'], registers,
    });
    const sessionLabels = ['protocol', 'grant', 'role', 'database'] as const;
    const activeSessions = new GaugeTally(sessionLabels);
    new Gauge({
      name: 'tokengate_sessions_active', help: 'Admitted client sessions now relaying.',
      labelNames: sessionLabels, registers,
      collect() {
        for (const s of sources.sessions.select()) {
          const i = s.info();
          if (i.grant === undefined) continue; // still in the handshake
          activeSessions.add({ protocol: i.protocol, grant: i.grant, role: i.role ?? '', database: i.database ?? '' });
        }
        activeSessions.report(this);
      },
    });
    this.#sessionsEnded = new Counter({
      name: 'tokengate_sessions_ended_total', help: 'Admitted sessions that ended, by audit reason (client_terminated, token_expired, killed, revoked, ...).',
      labelNames: ['protocol', 'reason'], registers,
    });
    new Counter({
      name: 'tokengate_client_bytes_total', help: 'Bytes relayed between clients and upstreams, by direction (from_client, to_client).',
      labelNames: ['protocol', 'direction'], registers,
      collect() {
        // Ended sessions were added up from their session_end records; live ones are read now.
        const totals = new Map<Protocol, { fromClient: number; toClient: number }>();
        for (const [p, t] of ended) totals.set(p, { ...t });
        for (const s of sources.sessions.select()) {
          const i = s.info();
          if (i.bytesFromClient === 0 && i.bytesToClient === 0) continue;
          const t = totals.get(i.protocol) ?? { fromClient: 0, toClient: 0 };
          t.fromClient += i.bytesFromClient;
          t.toClient += i.bytesToClient;
          totals.set(i.protocol, t);
        }
        this.reset();
        for (const [protocol, t] of totals) {
          this.inc({ protocol, direction: 'from_client' }, t.fromClient);
          this.inc({ protocol, direction: 'to_client' }, t.toClient);
        }
      },
    });
    new Counter({
      name: 'tokengate_queries_total', help: 'Statements completed upstream (a simple Query or a Sync-terminated batch; a MySQL query command).',
      labelNames: ['protocol', 'grant'], registers,
      collect() {
        this.reset();
        for (const q of queries.values()) this.inc({ protocol: q.protocol, grant: q.grant }, q.stats.count);
      },
    });
    this.registry.registerMetric(new AccumulatedHistogram({
      name: 'tokengate_query_duration_seconds', help: 'Time from a statement reaching the upstream to its last response byte (millisecond resolution).',
      labelNames: ['protocol', 'grant'],
      series: () => [...queries.values()].map((q) => ({ labels: { protocol: q.protocol, grant: q.grant }, stats: q.stats })),
    }) as unknown as Metric);

    // A MySQL pool per client capability set: the gauges add up the pools of one upstream, role and database.
    const poolLabels = ['protocol', 'upstream', 'role', 'database'] as const;
    const poolConnections = new GaugeTally([...poolLabels, 'state'] as const);
    new Gauge({
      name: 'tokengate_pool_connections', help: 'Upstream connections per pool: idle (ready to hand out) or active (in use by a session).',
      labelNames: [...poolLabels, 'state'], registers,
      collect() {
        for (const p of sources.pools.snapshot()) {
          const labels = { protocol: p.protocol, upstream: p.upstream, role: p.role, database: p.database };
          poolConnections.add({ ...labels, state: 'idle' }, p.stats.idle);
          poolConnections.add({ ...labels, state: 'active' }, p.stats.active);
        }
        poolConnections.report(this);
      },
    });
    const waiting = new GaugeTally(poolLabels);
    new Gauge({
      name: 'tokengate_pool_waiting_clients', help: 'Logins waiting for a pool to hand out a connection (at pool.maxConnections).',
      labelNames: poolLabels, registers,
      collect() {
        for (const p of sources.pools.snapshot()) {
          waiting.add({ protocol: p.protocol, upstream: p.upstream, role: p.role, database: p.database }, p.stats.waiting);
        }
        waiting.report(this);
      },
    });
    this.#acquireWait = new Histogram({
      name: 'tokengate_pool_acquire_seconds', help: 'Time a login took to get an upstream connection from its pool (idle, newly opened, or after waiting), failures included.',
      labelNames: ['protocol', 'upstream', 'role'], buckets: ACQUIRE_BUCKETS, registers,
    });

    this.#verifications = new Counter({
      name: 'tokengate_token_verifications_total', help: 'Access tokens verified, by result (ok or the rejection reason) and cache (hit: no signature check of its own).',
      labelNames: ['result', 'cache'], registers,
    });
    this.#jwks = new Counter({
      name: 'tokengate_jwks_fetches_total', help: "Requests for the issuer's signing keys (JWKS), by result (ok: HTTP 200; failed).",
      labelNames: ['result'], registers,
    });
    new Gauge({
      name: 'tokengate_revocations_active', help: 'Operator revocations in force.', registers,
      collect() {
        this.set(sources.revocations.list(sources.clock.now()).length);
      },
    });
    this.#reloads = new Counter({
      name: 'tokengate_config_reloads_total', help: 'Config reloads (SIGHUP, POST /reload), by result (ok; failed: the running config was kept).',
      labelNames: ['result'], registers,
    });
    this.#reloads.inc({ result: 'ok' }, 0);
    this.#reloads.inc({ result: 'failed' }, 0);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition of every metric (of every worker, under a supervisor). */
  render(): Promise<string> {
    return this.#renderer ? this.#renderer() : this.registry.metrics();
  }

  /** A worker's scrape covers all workers: the supervisor sums their registries (src/cluster). */
  renderWith(renderer: () => Promise<string>): void {
    this.#renderer = renderer;
  }

  queryStats(protocol: Protocol, grant: string): QueryStats {
    const key = `${protocol}\u0000${grant}`;
    let q = this.#queries.get(key);
    if (!q) this.#queries.set(key, (q = { protocol, grant, stats: new QueryStats() }));
    return q.stats;
  }

  /** Every audit record passes here (AuditLog.onWrite): connections and session ends are counted from them. */
  readonly audited = (e: AuditEvent): void => {
    switch (e.event) {
      case 'connection_accepted':
        this.#accepted.inc({ protocol: e.protocol, grant: e.grant });
        break;
      case 'connection_rejected':
        this.#rejected.inc({ protocol: e.protocol, reason: e.reason });
        break;
      case 'session_end': {
        this.#sessionsEnded.inc({ protocol: e.protocol, reason: e.reason });
        let t = this.#ended.get(e.protocol);
        if (!t) this.#ended.set(e.protocol, (t = { fromClient: 0, toClient: 0 }));
        t.fromClient += e.bytesFromClient;
        t.toClient += e.bytesToClient;
        break;
      }
    }
  };

  verification(result: string, cached: boolean): void {
    this.#verifications.inc({ result, cache: cached ? 'hit' : 'miss' });
  }

  jwksFetch(ok: boolean): void {
    this.#jwks.inc({ result: ok ? 'ok' : 'failed' });
  }

  acquired(protocol: Protocol, upstream: string, role: string, seconds: number): void {
    this.#acquireWait.observe({ protocol, upstream, role }, seconds);
  }

  reloaded(ok: boolean): void {
    this.#reloads.inc({ result: ok ? 'ok' : 'failed' });
  }
}
