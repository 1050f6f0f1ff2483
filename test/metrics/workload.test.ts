import { Client } from 'pg';
import type mysql from 'mysql2/promise';
import { startGateway } from '../../src/core/gateway';
import { MemoryTransport } from '../helpers/memoryTransport';
import { waitFor } from '../helpers/waitFor';
import { connectMysql2, mariadbCli, psql } from '../integration/clients';
import { startGatewayHarness, UPSTREAM, type Harness, type MysqlHarness, type PgHarness, type Protocol } from '../integration/harness';
import { parsePromText, type Exposition } from './promText';

/**
 * A scripted workload through a real gateway (real clients, real upstream, the dev issuer), then
 * the scrape: every counter, gauge and histogram says exactly what happened, and no label
 * carries a token's subject, its jti or a client address.
 */

const GRANT = 'reporting-agents';
/** Every label name a tokengate_ metric may have: config names and fixed codes only. */
const ALLOWED_LABELS = new Set(['protocol', 'grant', 'role', 'database', 'upstream', 'state', 'reason', 'result', 'cache', 'direction', 'le']);

async function scrape(h: Harness): Promise<Exposition> {
  const t = await h.gateway.metrics!.render(); if (process.env.DUMP) require('fs').appendFileSync('/tmp/metrics-dump.txt', t + '\n=====\n');
  return parsePromText(t);
}

const until = (what: string, cond: () => boolean | Promise<boolean>): Promise<unknown> => waitFor(cond, { what, timeoutMs: 5000, intervalMs: 10 });

/** What both protocols' workloads leave behind, checked against the audit records and the sessions. */
/** `pools`: the upstream connections the workload left open (a MySQL pool per client kind: the CLI's and mysql2's capabilities differ). */
async function checkWorkload(h: Harness, protocol: Protocol, live: number, pools: number): Promise<Exposition> {
  const m = await scrape(h);
  const records = h.audit.records.filter((r) => r.protocol === protocol);
  const byEvent = (e: string): Record<string, unknown>[] => records.filter((r) => r.event === e);
  const upstream = UPSTREAM[protocol];

  expect(m.value('tokengate_connections_accepted_total', { protocol, grant: GRANT })).toBe(2);
  expect(m.value('tokengate_connections_rejected_total', { protocol, reason: 'expired' })).toBe(1);
  expect(m.sum('tokengate_connections_rejected_total')).toBe(byEvent('connection_rejected').length);
  expect(m.value('tokengate_sessions_active', { protocol, grant: GRANT, role: 'reader', database: 'app' })).toBe(live);

  // Queries: one per query audit record; the sleep is the one statement above 250 ms.
  const queries = byEvent('query').length;
  expect(queries).toBe(4); // the first client's one statement and the second's three
  expect(m.value('tokengate_queries_total', { protocol, grant: GRANT })).toBe(queries);
  const hist = { protocol, grant: GRANT };
  expect(m.types.get('tokengate_query_duration_seconds')).toBe('histogram');
  expect(m.value('tokengate_query_duration_seconds_count', hist)).toBe(queries);
  expect(m.value('tokengate_query_duration_seconds_bucket', { ...hist, le: '+Inf' })).toBe(queries);
  expect(m.value('tokengate_query_duration_seconds_bucket', { ...hist, le: '0.25' })).toBe(queries - 1);
  expect(m.value('tokengate_query_duration_seconds_bucket', { ...hist, le: '0.5' })).toBe(queries);
  expect(m.value('tokengate_query_duration_seconds_sum', hist)).toBeGreaterThanOrEqual(0.3);
  const buckets = m.find('tokengate_query_duration_seconds_bucket', hist).map((s) => s.value);
  expect(buckets).toEqual([...buckets].sort((a, b) => a - b));

  // Bytes: the ended sessions' session_end records plus the live sessions' counters now.
  const ended = byEvent('session_end');
  const liveInfo = h.gateway.sessions.select({ protocol }).map((s) => s.info());
  const total = (f: 'bytesFromClient' | 'bytesToClient'): number =>
    ended.reduce((a, r) => a + (r[f] as number), 0) + liveInfo.reduce((a, i) => a + i[f], 0);
  expect(m.value('tokengate_client_bytes_total', { protocol, direction: 'from_client' })).toBe(total('bytesFromClient'));
  expect(m.value('tokengate_client_bytes_total', { protocol, direction: 'to_client' })).toBe(total('bytesToClient'));
  expect(total('bytesFromClient')).toBeGreaterThan(0);

  // One token for both sessions: one signature check, then the cache; the expired one is refused.
  expect(m.value('tokengate_token_verifications_total', { result: 'ok', cache: 'miss' })).toBe(1);
  expect(m.value('tokengate_token_verifications_total', { result: 'ok', cache: 'hit' })).toBe(1);
  expect(m.value('tokengate_token_verifications_total', { result: 'expired', cache: 'miss' })).toBe(1);
  expect(m.value('tokengate_jwks_fetches_total', { result: 'ok' })).toBe(1);
  expect(m.value('tokengate_jwks_fetches_total', { result: 'failed' })).toBeUndefined();

  const pool = { protocol, upstream, role: 'reader', database: h.names.app };
  expect(m.value('tokengate_pool_connections', { ...pool, state: 'active' })).toBe(live);
  expect(m.value('tokengate_pool_connections', { ...pool, state: 'idle' })).toBe(pools - live);
  expect(m.value('tokengate_pool_waiting_clients', pool)).toBe(0);
  expect(m.value('tokengate_pool_acquire_seconds_count', { protocol, upstream, role: 'reader' })).toBe(2);

  expect(m.value('tokengate_revocations_active')).toBe(1);
  expect(m.value('tokengate_config_reloads_total', { result: 'failed' })).toBe(1);
  expect(m.value('tokengate_config_reloads_total', { result: 'ok' })).toBe(0);

  // prom-client's process metrics, under their usual names.
  expect(m.find('process_cpu_user_seconds_total')).toHaveLength(1);
  expect(m.find('nodejs_eventloop_lag_seconds')).toHaveLength(1);
  expect(h.gateway.metrics!.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  return m;
}

/** No label names other than config names and codes; no claim or address in any value. */
function checkCardinality(h: Harness, m: Exposition): void {
  const forbidden = ['svc-reporting', '127.0.0.1'];
  for (const r of h.audit.records) if (typeof r.jti === 'string') forbidden.push(r.jti);
  expect(forbidden.length).toBeGreaterThan(2);
  const own = m.samples.filter((s) => s.name.startsWith('tokengate_'));
  expect(own.length).toBeGreaterThan(20);
  for (const s of own) {
    for (const [k, v] of Object.entries(s.labels)) {
      expect(ALLOWED_LABELS.has(k) ? k : `${s.name}{${k}}`).toBe(k);
      for (const f of forbidden) expect(v.includes(f) ? `${s.name}{${k}="${v}"}` : '').toBe('');
    }
  }
}

/** What both workloads do besides their clients: revoke someone else, and a reload that fails (the harness config has no file). */
async function operatorActions(h: Harness): Promise<void> {
  h.gateway.state.revocations.add({ target: { sub: 'svc-nobody' }, reason: 'metrics test' }, Date.now(), 3_600_000);
  const outcome = await h.gateway.reload();
  expect(outcome.ok).toBe(false);
}

describe('metrics after a PostgreSQL workload', () => {
  let h: PgHarness;
  beforeAll(async () => {
    h = await startGatewayHarness({ protocol: 'postgres', admin: true });
  });
  afterAll(async () => {
    await h?.stop();
  });

  test('counters, gauges and histograms match what the clients did; labels carry no identity', async () => {
    const token = await h.token();
    const poolIdle = (n = 1): boolean => Object.values(h.gateway.pools.stats('postgres')).reduce((a, s) => a + s.idle, 0) === n;

    expect((await psql(h, token, 'select 1')).code).toBe(0);
    await until('the first session to end and its connection to be idle', () => h.audit.ofEvent('session_end').length === 1 && poolIdle(1));

    const c = new Client({ host: '127.0.0.1', port: h.port, user: 'reader', database: 'app', password: token });
    c.on('error', () => undefined);
    await c.connect();
    await c.query('select 1');
    await c.query('select 2');
    await c.query('select pg_sleep(0.3)');

    const expired = await h.token('svc-reporting', { expiresInSec: -120 });
    const refused = await psql(h, expired, 'select 1');
    expect(refused.code).not.toBe(0);
    await operatorActions(h);

    const m = await checkWorkload(h, 'postgres', 1, 1);
    expect(m.value('tokengate_sessions_ended_total', { protocol: 'postgres', reason: 'client_terminated' })).toBe(1);
    checkCardinality(h, m);

    await c.end();
    await until('the second session to end and its connection to be idle', () => h.audit.ofEvent('session_end').length === 2 && poolIdle(1));
    const after = await checkWorkload(h, 'postgres', 0, 1);
    expect(after.value('tokengate_sessions_ended_total', { protocol: 'postgres', reason: 'client_terminated' })).toBe(2);
  });

  test('each gateway has its own registry; a reload that applies counts as ok', async () => {
    const config = h.gateway.config.current();
    const other = await startGateway(config, { auditTransport: new MemoryTransport(), loadConfig: () => config });
    try {
      expect((await other.reload()).ok).toBe(true);
      const m = parsePromText(await other.metrics!.render());
      expect(m.value('tokengate_config_reloads_total', { result: 'ok' })).toBe(1);
      expect(m.value('tokengate_config_reloads_total', { result: 'failed' })).toBe(0);
      expect(m.find('tokengate_connections_accepted_total')).toHaveLength(0);
      const first = await scrape(h);
      expect(first.value('tokengate_config_reloads_total', { result: 'ok' })).toBe(0);
    } finally {
      await other.close();
    }
  });

  test('without listen.admin no metrics are collected', async () => {
    const g = await h.startGateway({ admin: false });
    expect(g.gateway.metrics).toBeUndefined();
  });
});

describe('metrics after a MySQL workload', () => {
  let h: MysqlHarness;
  beforeAll(async () => {
    h = await startGatewayHarness({ protocol: 'mysql', admin: true });
  });
  afterAll(async () => {
    await h?.stop();
  });

  test('counters, gauges and histograms match what the clients did; labels carry no identity', async () => {
    const token = await h.token();
    const poolIdle = (n = 1): boolean => Object.values(h.gateway.pools.stats('mysql')).reduce((a, s) => a + s.idle, 0) === n;

    const cli = await mariadbCli(h, token, 'select 1');
    expect(cli.code).toBe(0);
    await until('the first session to end and its connection to be idle', () => h.audit.ofEvent('session_end').length === 1 && poolIdle(1));

    const c: mysql.Connection = await connectMysql2(h, token);
    await c.query('select 1');
    await c.query('select 2');
    await c.query('select sleep(0.3)');

    const expired = await h.token('svc-reporting', { expiresInSec: -120 });
    await expect(connectMysql2(h, expired)).rejects.toMatchObject({ errno: 1045 });
    await operatorActions(h);

    const m = await checkWorkload(h, 'mysql', 1, 2);
    const quitReason = h.audit.ofEvent('session_end')[0].reason as string;
    expect(m.value('tokengate_sessions_ended_total', { protocol: 'mysql', reason: quitReason })).toBe(1);
    checkCardinality(h, m);

    await c.end();
    await until('the second session to end and its connection to be idle', () => h.audit.ofEvent('session_end').length === 2 && poolIdle(2));
    const after = await checkWorkload(h, 'mysql', 0, 2);
    expect(after.sum('tokengate_sessions_ended_total', { protocol: 'mysql' })).toBe(2);
  });
});
