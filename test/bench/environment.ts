/**
 * Everything the scenarios run against: a throwaway PostgreSQL (SCRAM), pgbouncers in session
 * mode (SCRAM, plain, TLS-required), a throwaway MariaDB, the dev OIDC issuer (in this process)
 * and tokengate as a child process, with audit.queries off and, separately, on.
 * Missing tools make their rows skip with a note instead of failing the run.
 */
import { startRedis } from '../helpers/redisServer';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDevIssuer, type DevIssuer } from '../../src/dev/devIssuer';
import type { BaselineBuild } from './baseline';
import { connectTimes } from './connectLatency';
import type { BenchOptions } from './options';
import { which } from './proc';
import {
  startBenchGateway, BENCH_AUDIENCE, BENCH_CLIENT, MYSQL_ALIAS, PG_ALIAS, ROLE, type BenchGateway, type GatewayOptions,
} from './services/gateway';
import { startBenchMariadb, type BenchMariadb } from './services/mariadb';
import { startMysqlBareRelay, type MysqlBareRelay } from './services/mysqlBareRelay';
import { startNodePipe, type NodePipe } from './services/nodePipe';
import { startNodeTlsPipe } from './services/nodeTlsPipe';
import { startPgbouncer, type BenchPgbouncer } from './services/pgbouncer';
import { startBenchPostgres, type BenchPostgres } from './services/postgres';
import { makeBenchCert, type BenchCert } from './services/tlsCert';
import type { MysqlTarget, PgTarget } from './workloads';

/** Upstream connections per pool, the same for pgbouncer (default_pool_size) and tokengate (maxConnections). */
export const POOL_SIZE = 20;
const TOKEN_LIFETIME_SEC = 6 * 3600;

export interface BenchEnvironment {
  dir: string;
  root: string;
  cert: BenchCert;
  pg: BenchPostgres;
  bouncer?: { scram: BenchPgbouncer; plain: BenchPgbouncer; tls: BenchPgbouncer };
  mariadb?: BenchMariadb;
  issuer: DevIssuer;
  token: string;
  gateway: BenchGateway;
  /** The same gateway config with audit.queries: true, for the one run that measures query auditing. */
  gatewayAudit?: BenchGateway;
  /** The same gateway config with listen.admin set (metrics collected), for the one run that measures their cost. */
  gatewayMetrics?: BenchGateway;
  /** The same gateway config with workers: 2: a supervisor and two worker processes. */
  gatewayWorkers?: BenchGateway;
  /** A bare Node.js relay to PostgreSQL: the runtime's own cost, for reference. */
  nodePipe?: NodePipe;
  /** The same bare Node.js pipe in front of MariaDB (the client logs in to MariaDB through it). */
  mysqlPipe?: NodePipe;
  /** A bare Node.js MySQL login relay to MariaDB (same messages as tokengate, no token/grant/audit), for reference. */
  mysqlBareRelay?: MysqlBareRelay;
  /** A bare Node.js relay that terminates the client's TLS and forwards plaintext to PostgreSQL, for reference. */
  nodeTlsPipe?: NodePipe;
  /** BASELINE=<ref>: that revision's build, and its gateway (same config as `gateway`). */
  baseline?: BaselineBuild;
  gatewayBaseline?: BenchGateway;
  /** What every gateway of this run shares (more are started for profiling). */
  gatewayOptions: Omit<GatewayOptions, 'name' | 'dir' | 'auditQueries' | 'cpuProfileDir' | 'wrapper'>;
  /** Why a group of rows cannot run (tool missing, MySQL listener not there yet). */
  missing: { pgbouncer?: string; sysbench?: string; mariadb?: string; gatewayMysql?: string; baselineMysql?: string };
  pgBin: string;
  stop(): Promise<void>;
}

export function findPgBin(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(path.join(base, v, 'bin/initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (versions.length === 0) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; install postgresql (apt-get install postgresql)');
  return path.join(base, versions[0], 'bin');
}

export function pgTargetDirect(env: BenchEnvironment, sslmode: PgTarget['sslmode'] = 'disable'): PgTarget {
  return { host: '127.0.0.1', port: env.pg.port, user: env.pg.user, database: env.pg.database, password: env.pg.password, sslmode };
}

export function pgTargetBouncer(env: BenchEnvironment, b: BenchPgbouncer, sslmode: PgTarget['sslmode'] = 'disable'): PgTarget {
  return { host: '127.0.0.1', port: b.port, user: env.pg.user, database: env.pg.database, password: env.pg.password, sslmode };
}

export function pgTargetGateway(env: BenchEnvironment, g: BenchGateway, sslmode: PgTarget['sslmode'] = 'disable'): PgTarget {
  return { host: '127.0.0.1', port: g.pgPort, user: ROLE, database: PG_ALIAS, password: env.token, sslmode };
}

export function mysqlTargetDirect(m: BenchMariadb): MysqlTarget {
  return { host: '127.0.0.1', port: m.port, user: m.user, database: m.database, password: m.password };
}

export function mysqlTargetGateway(env: BenchEnvironment, g: BenchGateway): MysqlTarget {
  return { host: '127.0.0.1', port: g.mysqlPort!, user: ROLE, database: MYSQL_ALIAS, password: env.token };
}

export interface SetupNeeds {
  pgbouncer: boolean;
  mariadb: boolean;
  auditGateway: boolean;
  metricsGateway: boolean;
  /** The same gateway with workers: 2 (select-only and connect-per-transaction rows). */
  workersGateway: boolean;
  nodePipe: boolean;
  mysqlPipe: boolean;
  mysqlBareRelay: boolean;
  nodeTlsPipe: boolean;
  /** Start the baseline build's gateway next to this checkout's (throughput runs; INSTRUCTIONS=1 starts its own). */
  baselineGateway: boolean;
}

export async function setUpEnvironment(
  o: BenchOptions, root: string, needs: SetupNeeds, log: (l: string) => void, baseline?: BaselineBuild,
): Promise<BenchEnvironment> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tg-bench-'));
  chmodSync(dir, 0o755); // postgres and mysql must reach their subdirectories
  const stops: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s().catch((err: Error) => log(`cleanup: ${err.message}`));
    if (o.keep) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  };
  try {
    const missing: BenchEnvironment['missing'] = {};
    if (!which('pgbench')) throw new Error('pgbench not found; install it (apt-get install postgresql-client or postgresql-contrib)');
    const pgBin = findPgBin();
    const cert = await makeBenchCert(dir);

    log('starting PostgreSQL');
    const pg = await startBenchPostgres({ bin: pgBin, dir: path.join(dir, 'pg'), cert, pgbenchScale: o.pgbenchScale, log });
    stops.push(() => pg.stop());

    let bouncer: BenchEnvironment['bouncer'];
    if (!needs.pgbouncer) missing.pgbouncer = 'not needed by the selected scenarios';
    else if (!which('pgbouncer', ['/usr/sbin'])) missing.pgbouncer = 'pgbouncer is not installed (apt-get install pgbouncer)';
    else {
      log('starting pgbouncer (scram-sha-256, plain, TLS-required)');
      const common = { upstream: pg, poolSize: POOL_SIZE };
      const scram = await startPgbouncer({ ...common, name: 'pgbouncer-scram', dir: path.join(dir, 'pgb-scram'), auth: 'scram-sha-256' });
      stops.push(() => scram.stop());
      const plain = await startPgbouncer({ ...common, name: 'pgbouncer-plain', dir: path.join(dir, 'pgb-plain'), auth: 'plain' });
      stops.push(() => plain.stop());
      const tls = await startPgbouncer({ ...common, name: 'pgbouncer-tls', dir: path.join(dir, 'pgb-tls'), auth: 'scram-sha-256', tls: cert });
      stops.push(() => tls.stop());
      bouncer = { scram, plain, tls };
    }

    let mariadb: BenchMariadb | undefined;
    if (!needs.mariadb) missing.mariadb = 'not needed by the selected scenarios';
    else if (!which('sysbench')) missing.sysbench = 'sysbench is not installed (apt-get install sysbench)';
    if (needs.mariadb) {
      if (!which('mariadbd', ['/usr/sbin']) || !which('mariadb-install-db')) missing.mariadb = 'MariaDB server is not installed (apt-get install mariadb-server)';
      else {
        log('starting MariaDB');
        mariadb = await startBenchMariadb({ dir: path.join(dir, 'mariadb'), tableSize: o.sysbenchTableSize, log });
        stops.push(() => mariadb!.stop());
      }
    }

    const issuer = await startDevIssuer({ audience: BENCH_AUDIENCE, clients: [BENCH_CLIENT], tokenLifetimeSec: TOKEN_LIFETIME_SEC });
    stops.push(() => issuer.stop());
    const token = await issuer.mintToken({ clientId: BENCH_CLIENT.clientId });

    const gatewayOptions: BenchEnvironment['gatewayOptions'] = {
      root, issuer: issuer.issuer, maxTokenLifetime: `${TOKEN_LIFETIME_SEC / 3600}h`, postgres: pg, mariadb, cert, poolSize: POOL_SIZE,
    };
    log('starting tokengate');
    const gateway = await startBenchGateway({ ...gatewayOptions, name: 'tokengate', dir: path.join(dir, 'gateway'), auditQueries: false });
    stops.push(() => gateway.stop());
    let gatewayAudit: BenchGateway | undefined;
    if (needs.auditGateway) {
      gatewayAudit = await startBenchGateway({ ...gatewayOptions, name: 'tokengate-audit', dir: path.join(dir, 'gateway-audit'), auditQueries: true });
      stops.push(() => gatewayAudit!.stop());
    }
    let gatewayMetrics: BenchGateway | undefined;
    if (needs.metricsGateway) {
      gatewayMetrics = await startBenchGateway({ ...gatewayOptions, name: 'tokengate-metrics', dir: path.join(dir, 'gateway-metrics'), auditQueries: false, metrics: true });
      stops.push(() => gatewayMetrics!.stop());
    }
    let gatewayWorkers: BenchGateway | undefined;
    if (needs.workersGateway) {
      log('starting tokengate with workers: 2 (and a throwaway redis-server for their shared state)');
      const redis = await startRedis();
      stops.push(() => redis.stop());
      gatewayWorkers = await startBenchGateway({
        ...gatewayOptions, name: 'tokengate-workers', dir: path.join(dir, 'gateway-workers'), auditQueries: false, workers: 2, redisUrl: redis.url,
      });
      stops.push(() => gatewayWorkers!.stop());
    }
    let gatewayBaseline: BenchGateway | undefined;
    if (baseline && needs.baselineGateway) {
      log(`starting tokengate-baseline (${baseline.describe})`);
      gatewayBaseline = await startBenchGateway({ ...gatewayOptions, root: baseline.dir, name: 'tokengate-baseline', dir: path.join(dir, 'gateway-baseline'), auditQueries: false });
      stops.push(() => gatewayBaseline!.stop());
    }

    let nodePipe: NodePipe | undefined;
    if (needs.nodePipe) {
      nodePipe = await startNodePipe(dir, pg.port);
      stops.push(() => nodePipe!.stop());
    }
    let mysqlPipe: NodePipe | undefined;
    if (needs.mysqlPipe && mariadb) {
      mysqlPipe = await startNodePipe(dir, mariadb.port, 'mysql-pipe');
      stops.push(() => mysqlPipe!.stop());
    }
    let mysqlBareRelay: MysqlBareRelay | undefined;
    if (needs.mysqlBareRelay && mariadb) {
      mysqlBareRelay = await startMysqlBareRelay(dir, mariadb);
      stops.push(() => mysqlBareRelay!.stop());
    }

    let nodeTlsPipe: NodePipe | undefined;
    if (needs.nodeTlsPipe) {
      nodeTlsPipe = await startNodeTlsPipe(dir, pg.port, cert);
      stops.push(() => nodeTlsPipe!.stop());
    }

    const env: BenchEnvironment = {
      dir, root, cert, pg, bouncer, mariadb, issuer, token, gateway, gatewayAudit, gatewayMetrics, gatewayWorkers, nodePipe, mysqlPipe, mysqlBareRelay, nodeTlsPipe,
      baseline, gatewayBaseline, gatewayOptions, missing, pgBin, stop,
    };
    // Fail early with a clear message if a login through a gateway does not work at all.
    for (const [name, g] of [['tokengate', gateway], ['tokengate-workers', gatewayWorkers], ['tokengate-baseline', gatewayBaseline]] as const) {
      if (!g) continue;
      await connectTimes({ pg: pgTargetGateway(env, g) }, 1).catch((err: Error) => {
        throw new Error(`a PostgreSQL login through ${name} failed: ${err.message}; gateway log: ${g.daemon.logFile}`);
      });
    }
    if (mariadb && gateway.mysqlPort) {
      const why = await mysqlLoginProblem(env, gateway, 'tokengate');
      if (why) missing.gatewayMysql = why;
    }
    if (mariadb && gatewayBaseline?.mysqlPort) {
      const why = await mysqlLoginProblem(env, gatewayBaseline, 'tokengate-baseline');
      if (why) missing.baselineMysql = why;
    }
    return env;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Why a MySQL login through a gateway fails (undefined when it works): its MySQL rows are skipped with this. */
async function mysqlLoginProblem(env: BenchEnvironment, g: BenchGateway, name: string): Promise<string | undefined> {
  try {
    await connectTimes({ mysql: mysqlTargetGateway(env, g) }, 1);
    return undefined;
  } catch (err) {
    const message = (err as Error).message;
    return /ECONNREFUSED/.test(message)
      ? `${name} does not listen on listen.mysql (connection refused on 127.0.0.1:${g.mysqlPort}); these rows run once the MySQL listener lands`
      : `a MySQL login through ${name} failed: ${message}`;
  }
}
