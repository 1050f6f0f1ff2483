/** The benchmark's scenarios, the systems each one compares, and the targets (the ratios are the contract). */
import path from 'node:path';
import {
  mysqlTargetDirect, mysqlTargetGateway, pgTargetBouncer, pgTargetDirect, pgTargetGateway, type BenchEnvironment,
} from './environment';
import type { ScenarioNumber } from './options';
import type { BenchGateway } from './services/gateway';
import type { NodePipe } from './services/nodePipe';
import { SCRAPE_INTERVAL_MS, whileScraping } from './services/metricsScraper';
import type { Target } from './report';
import { runPgbench, runSysbench, type MysqlTarget, type PgTarget, type WorkloadResult } from './workloads';

export interface SystemSpec {
  id: string;
  label: string;
  /** The proxy process whose CPU is charged per transaction (tokengate or pgbouncer). */
  pid?: number;
  /** Several processes charged together (a supervisor and its workers); read at each measurement. */
  pids?: () => number[];
  run(seconds: number): Promise<WorkloadResult>;
}

export interface ThroughputSpec {
  id: string;
  scenario: ScenarioNumber;
  title: string;
  command: string;
  systems: SystemSpec[];
  skipped?: string;
  notes: string[];
  /** Two systems that swap places every other round (tokengate and tokengate-baseline or -metrics), so neither always runs first. */
  alternate?: [string, string];
}

export const TARGETS: Target[] = [
  { scenario: '1', description: 'select-only: tokengate / pgbouncer', numerator: 'tokengate', denominator: 'pgbouncer', minimum: 0.85 },
  { scenario: '1', description: 'select-only: tokengate with metrics / without (median of the rounds)', numerator: 'tokengate-metrics', denominator: 'tokengate', minimum: 0.97, paired: true },
  { scenario: '2', description: 'TPC-B: tokengate / pgbouncer', numerator: 'tokengate', denominator: 'pgbouncer', minimum: 0.85 },
  { scenario: '3', description: 'connect per transaction: tokengate / pgbouncer auth_type=plain', numerator: 'tokengate', denominator: 'pgbouncer-plain', minimum: 0.5 },
  { scenario: '3', description: 'connect per transaction: tokengate / direct SCRAM login', numerator: 'tokengate', denominator: 'direct', minimum: 5 },
  { scenario: '4t', description: 'MariaDB point select (text): tokengate / direct', numerator: 'tokengate', denominator: 'direct', minimum: 0.45 },
  { scenario: '4p', description: 'MariaDB point select (prepared): tokengate / direct', numerator: 'tokengate', denominator: 'direct', minimum: 0.45 },
  { scenario: '5', description: 'MySQL connect per query: tokengate / direct', numerator: 'tokengate', denominator: 'direct', minimum: 0.6 },
];

const SELECT_ONLY = ['-S', '-c', '16', '-j', '2', '-n'];
const TPCB = ['-c', '8', '-j', '2', '-n'];
const CONNECT_PER_TX = ['-S', '-C', '-c', '8', '-j', '2', '-n'];

function pgSystem(id: string, label: string, target: PgTarget, flags: string[], pid?: number): SystemSpec {
  return { id, label, pid, run: (seconds) => runPgbench(target, flags, seconds) };
}

/** tokengate with workers: 2: the CPU per transaction is the supervisor's and both workers' together. */
function workersSystem(g: BenchGateway, label: string, target: PgTarget, flags: string[]): SystemSpec {
  return { ...pgSystem('tokengate-workers', label, target, flags), pids: () => g.pids() };
}

const PIPE_LABEL = 'reference: bare Node.js pipe (no protocol)';
export const BASELINE_ID = 'tokengate-baseline';

/** `tokengate (cached token + pool checkout)` -> `tokengate-baseline (cached token + pool checkout), BASELINE=main`. */
function baselineLabel(env: BenchEnvironment, label: string): string {
  return `${label.replace(/^tokengate/, BASELINE_ID)}, BASELINE=${env.baseline!.ref}`;
}

/**
 * Adds the baseline build's row right after tokengate's (same workload, same target but its port),
 * and has the two swap places every other round. Without BASELINE, or with its rows skipped, nothing.
 */
function withBaseline(spec: ThroughputSpec, env: BenchEnvironment, make: (id: string, label: string) => SystemSpec | undefined): ThroughputSpec {
  const at = spec.systems.findIndex((x) => x.id === 'tokengate');
  if (!env.baseline || at < 0) return spec;
  const row = make(BASELINE_ID, baselineLabel(env, spec.systems[at].label));
  if (!row) return spec;
  spec.systems.splice(at + 1, 0, row);
  return { ...spec, alternate: ['tokengate', BASELINE_ID] };
}

/** The bare Node.js pipe in front of PostgreSQL: the client logs in directly (SCRAM) through it. */
function pgPipeSystem(env: BenchEnvironment, pipe: NodePipe, flags: string[]): SystemSpec {
  return pgSystem('node-pipe', PIPE_LABEL, { ...pgTargetDirect(env), port: pipe.port }, flags, pipe.pid);
}

function mysqlSystem(id: string, label: string, target: MysqlTarget, test: string, threads: number, tableSize: number, extra: string[], pid?: number): SystemSpec {
  return { id, label, pid, run: (seconds) => runSysbench(target, { test, threads, tableSize, extra }, seconds) };
}

export function throughputScenarios(env: BenchEnvironment, wanted: Set<ScenarioNumber>): ThroughputSpec[] {
  const out: ThroughputSpec[] = [];
  const gw = env.gateway;
  const b = env.bouncer;
  const bouncerNote = env.missing.pgbouncer ? [`pgbouncer rows skipped: ${env.missing.pgbouncer}`] : [];
  // The sslmode is part of the command: libpq's default (prefer) negotiates TLS with tokengate, which has a certificate.
  const pgbench = (flags: string[], sslmode: PgTarget['sslmode'] = 'disable') => `PGSSLMODE=${sslmode} pgbench ${flags.join(' ')} -T <s>`;
  const gwb = env.gatewayBaseline;
  const pgBaseline = (spec: ThroughputSpec, flags: string[], sslmode: PgTarget['sslmode'] = 'disable'): ThroughputSpec =>
    withBaseline(spec, env, (id, label) => gwb && pgSystem(id, label, pgTargetGateway(env, gwb, sslmode), flags, gwb.pid));

  if (wanted.has('1')) {
    const systems = [pgSystem('direct', 'direct (SCRAM)', pgTargetDirect(env), SELECT_ONLY)];
    if (b) systems.push(pgSystem('pgbouncer', 'pgbouncer session, SCRAM', pgTargetBouncer(env, b.scram), SELECT_ONLY, b.scram.pid));
    systems.push(pgSystem('tokengate', 'tokengate', pgTargetGateway(env, gw), SELECT_ONLY, gw.pid));
    // Right after the plain row, the two swapping places every round: the target is a 3% difference.
    const gm = env.gatewayMetrics;
    if (gm) {
      const target = pgTargetGateway(env, gm);
      systems.push({
        id: 'tokengate-metrics', label: `tokengate, metrics on (listen.admin; /metrics scraped every ${SCRAPE_INTERVAL_MS / 1000} s)`, pid: gm.pid,
        run: (seconds) => whileScraping(gm.adminPort!, () => runPgbench(target, SELECT_ONLY, seconds)),
      });
    }
    if (env.gatewayWorkers) systems.push(workersSystem(env.gatewayWorkers, 'tokengate, workers: 2', pgTargetGateway(env, env.gatewayWorkers), SELECT_ONLY));
    if (env.gatewayAudit) {
      systems.push(pgSystem('tokengate-audit', 'tokengate, audit.queries on', pgTargetGateway(env, env.gatewayAudit), SELECT_ONLY, env.gatewayAudit.pid));
    }
    if (env.nodePipe) systems.push(pgPipeSystem(env, env.nodePipe, SELECT_ONLY));
    const alternate: ThroughputSpec['alternate'] = gm ? ['tokengate', 'tokengate-metrics'] : undefined;
    out.push(pgBaseline({ id: '1', scenario: '1', title: 'select-only', command: pgbench(SELECT_ONLY), systems, notes: bouncerNote, alternate }, SELECT_ONLY));
  }
  if (wanted.has('2')) {
    const systems = [pgSystem('direct', 'direct (SCRAM)', pgTargetDirect(env), TPCB)];
    if (b) systems.push(pgSystem('pgbouncer', 'pgbouncer session, SCRAM', pgTargetBouncer(env, b.scram), TPCB, b.scram.pid));
    systems.push(pgSystem('tokengate', 'tokengate', pgTargetGateway(env, gw), TPCB, gw.pid));
    if (env.nodePipe) systems.push(pgPipeSystem(env, env.nodePipe, TPCB));
    out.push(pgBaseline({ id: '2', scenario: '2', title: 'TPC-B', command: pgbench(TPCB), systems, notes: bouncerNote }, TPCB));
  }
  if (wanted.has('3')) {
    const systems = [pgSystem('direct', 'direct (SCRAM login)', pgTargetDirect(env), CONNECT_PER_TX)];
    if (b) {
      systems.push(pgSystem('pgbouncer', 'pgbouncer session, SCRAM', pgTargetBouncer(env, b.scram), CONNECT_PER_TX, b.scram.pid));
      systems.push(pgSystem('pgbouncer-plain', 'pgbouncer session, auth_type=plain', pgTargetBouncer(env, b.plain), CONNECT_PER_TX, b.plain.pid));
    }
    systems.push(pgSystem('tokengate', 'tokengate (cached token + pool checkout)', pgTargetGateway(env, gw), CONNECT_PER_TX, gw.pid));
    if (env.gatewayWorkers) systems.push(workersSystem(env.gatewayWorkers, 'tokengate, workers: 2', pgTargetGateway(env, env.gatewayWorkers), CONNECT_PER_TX));
    out.push(pgBaseline({ id: '3', scenario: '3', title: 'connect per transaction', command: pgbench(CONNECT_PER_TX), systems, notes: bouncerNote }, CONNECT_PER_TX));
  }

  const m = env.mariadb;
  const mysqlSkip = env.missing.mariadb ?? env.missing.sysbench ?? env.missing.gatewayMysql;
  const tableSize = m?.tableSize ?? 0;
  const baselineMysqlNote = env.gatewayBaseline && env.missing.baselineMysql ? [`${BASELINE_ID} rows skipped: ${env.missing.baselineMysql}`] : [];
  const mysqlBaseline = (spec: ThroughputSpec, test: string, threads: number, extra: string[]): ThroughputSpec =>
    withBaseline(spec, env, (id, label) => gwb && !env.missing.baselineMysql
      ? mysqlSystem(id, label, mysqlTargetGateway(env, gwb), test, threads, tableSize, extra, gwb.pid) : undefined);
  const pointSelect = (id: '4t' | '4p', mode: 'disable' | 'auto', title: string): void => {
    const extra = [`--db-ps-mode=${mode}`];
    const command = `sysbench oltp_point_select --threads=16 --db-ps-mode=${mode} --time=<s>`;
    if (mysqlSkip || !m) {
      out.push({ id, scenario: '4', title, command, systems: [], skipped: mysqlSkip ?? 'MariaDB not started', notes: [] });
      return;
    }
    out.push(mysqlBaseline({
      id, scenario: '4', title, command, notes: [...baselineMysqlNote],
      systems: [
        mysqlSystem('direct', 'direct (mysql_native_password)', mysqlTargetDirect(m), 'oltp_point_select', 16, tableSize, extra),
        mysqlSystem('tokengate', 'tokengate', mysqlTargetGateway(env, gw), 'oltp_point_select', 16, tableSize, extra, gw.pid),
        ...(env.mysqlPipe
          ? [mysqlSystem('node-pipe', PIPE_LABEL, { ...mysqlTargetDirect(m), port: env.mysqlPipe.port }, 'oltp_point_select', 16, tableSize, extra, env.mysqlPipe.pid)]
          : []),
      ],
    }, 'oltp_point_select', 16, extra));
  };
  if (wanted.has('4')) {
    pointSelect('4t', 'disable', 'MariaDB point select, text');
    pointSelect('4p', 'auto', 'MariaDB point select, prepared');
  }
  if (wanted.has('5')) {
    const script = path.join(env.root, 'test/bench/sysbench/connect_point_select.lua');
    const command = 'sysbench test/bench/sysbench/connect_point_select.lua --threads=8 --time=<s>';
    if (mysqlSkip || !m) out.push({ id: '5', scenario: '5', title: 'MySQL connect per query', command, systems: [], skipped: mysqlSkip ?? 'MariaDB not started', notes: [] });
    else {
      const systems = [
        mysqlSystem('direct', 'direct (mysql_native_password login)', mysqlTargetDirect(m), script, 8, tableSize, []),
        mysqlSystem('tokengate', 'tokengate (cached token + pool checkout)', mysqlTargetGateway(env, gw), script, 8, tableSize, [], gw.pid),
      ];
      const relay = env.mysqlBareRelay;
      if (relay) {
        const target = { host: '127.0.0.1', port: relay.port, user: m.user, database: m.database, password: 'anything' };
        systems.push(mysqlSystem('bare-relay', 'reference: bare Node.js MySQL login relay (same messages, no token/grant/audit)', target, script, 8, tableSize, [], relay.pid));
      }
      out.push(mysqlBaseline({ id: '5', scenario: '5', title: 'MySQL connect per query', command, notes: [...baselineMysqlNote], systems }, script, 8, []));
    }
  }
  if (wanted.has('6')) {
    // TLS costs every proxy that terminates it: compare tokengate over TLS with pgbouncer over TLS and
    // a bare Node.js TLS relay. The sslmode=prefer rows are what a client on libpq's default gets:
    // TLS from tokengate (it has a certificate), plaintext from a pgbouncer without client TLS files.
    const systems = [pgSystem('direct', 'direct, TLS (SCRAM)', pgTargetDirect(env, 'require'), SELECT_ONLY)];
    if (b) systems.push(pgSystem('pgbouncer', 'pgbouncer, client_tls_sslmode=require', pgTargetBouncer(env, b.tls, 'require'), SELECT_ONLY, b.tls.pid));
    systems.push(pgSystem('tokengate', 'tokengate, TLS', pgTargetGateway(env, gw, 'require'), SELECT_ONLY, gw.pid));
    systems.push(pgSystem('tokengate-prefer', 'tokengate, client sslmode=prefer (pgbench\'s default: TLS is negotiated, tokengate has a certificate)',
      pgTargetGateway(env, gw, 'prefer'), SELECT_ONLY, gw.pid));
    if (b) {
      systems.push(pgSystem('pgbouncer-no-tls', 'pgbouncer without client TLS files, client sslmode=prefer (answers \'N\': plaintext)',
        pgTargetBouncer(env, b.scram, 'prefer'), SELECT_ONLY, b.scram.pid));
    }
    if (env.nodeTlsPipe) {
      systems.push(pgSystem('node-tls-pipe', 'reference: bare Node.js relay terminating TLS (plaintext to PostgreSQL, no protocol)',
        { ...pgTargetDirect(env, 'require'), port: env.nodeTlsPipe.port }, SELECT_ONLY, env.nodeTlsPipe.pid));
    }
    out.push(pgBaseline({
      id: '6', scenario: '6', title: 'select-only over TLS', command: `${pgbench(SELECT_ONLY, 'require')} (PGSSLMODE=prefer where the row says)`, systems, notes: bouncerNote,
    }, SELECT_ONLY, 'require'));
  }
  return out;
}

export interface LatencySpec {
  protocol: 'postgres' | 'mysql';
  id: string;
  label: string;
  target: { pg: PgTarget } | { mysql: MysqlTarget };
}

/** Scenario 7: login latency through tokengate vs direct (and pgbouncer, for reference). */
export function latencySystems(env: BenchEnvironment): { systems: LatencySpec[]; notes: string[] } {
  const systems: LatencySpec[] = [
    { protocol: 'postgres', id: 'direct', label: 'direct (SCRAM)', target: { pg: pgTargetDirect(env) } },
  ];
  if (env.bouncer) systems.push({ protocol: 'postgres', id: 'pgbouncer', label: 'pgbouncer session, SCRAM', target: { pg: pgTargetBouncer(env, env.bouncer.scram) } });
  systems.push({ protocol: 'postgres', id: 'tokengate', label: 'tokengate', target: { pg: pgTargetGateway(env, env.gateway) } });
  const gwb = env.gatewayBaseline;
  if (gwb) systems.push({ protocol: 'postgres', id: BASELINE_ID, label: baselineLabel(env, 'tokengate'), target: { pg: pgTargetGateway(env, gwb) } });
  const notes: string[] = [];
  const mysqlSkip = env.missing.mariadb ?? env.missing.gatewayMysql;
  if (env.mariadb && !mysqlSkip) {
    systems.push({ protocol: 'mysql', id: 'direct', label: 'direct (mysql_native_password)', target: { mysql: mysqlTargetDirect(env.mariadb) } });
    systems.push({ protocol: 'mysql', id: 'tokengate', label: 'tokengate', target: { mysql: mysqlTargetGateway(env, env.gateway) } });
    if (gwb && !env.missing.baselineMysql) {
      systems.push({ protocol: 'mysql', id: BASELINE_ID, label: baselineLabel(env, 'tokengate'), target: { mysql: mysqlTargetGateway(env, gwb) } });
    } else if (gwb) notes.push(`${BASELINE_ID} MySQL login latency skipped: ${env.missing.baselineMysql}`);
  } else notes.push(`MySQL login latency skipped: ${mysqlSkip ?? 'MariaDB not started'}`);
  return { systems, notes };
}
