/**
 * INSTRUCTIONS=1: user-space instructions and system calls per transaction of each proxy,
 * counted by valgrind's callgrind under the same single-client load. A count depends neither on
 * what else the machine is doing nor on how fast it is, so the few microseconds between
 * tokengate, the bare Node.js references and pgbouncer, which a throughput run on a shared
 * 2-core machine cannot separate from its noise, are measured exactly and repeatably. The
 * method is described once, in countMethod(), which the report prints. */
import { chmodSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { POOL_SIZE, mysqlTargetDirect, mysqlTargetGateway, pgTargetDirect, pgTargetGateway, type BenchEnvironment } from './environment';
import type { BenchOptions, ScenarioNumber } from './options';
import { run, which, type Wrapper } from './proc';
import { median } from './report';
import type { Log } from './runner';
import { BASELINE_ID } from './scenarios';
import { startBenchGateway, type BenchGateway } from './services/gateway';
import { startMysqlBareRelay, type MysqlBareRelay } from './services/mysqlBareRelay';
import { startNodePipe, type NodePipe } from './services/nodePipe';
import { startNodeTlsPipe } from './services/nodeTlsPipe';
import { startPgbouncer } from './services/pgbouncer';
import { runPgbench, runSysbench, type MysqlTarget, type PgTarget, type RunLimit, type WorkloadResult } from './workloads';

/** One proxy process under callgrind. */
interface CountedProxy {
  pid: number;
  port?: number;
  /** Run callgrind_control under this prefix: vgdb reaches a process of another user only as that user. */
  controlAs?: string[];
  stop(): Promise<void>;
}

/** pgbouncer runs as postgres (see startPgbouncer). */
const AS_POSTGRES = ['setpriv', '--reuid=postgres', '--regid=postgres', '--clear-groups'];

type GatewayName = 'tokengate' | 'tokengate-metrics' | typeof BASELINE_ID;
type ProxyName = GatewayName | 'pgbouncer-scram' | 'pgbouncer-plain' | 'pgbouncer-tls' | 'node-pipe' | 'node-tls-pipe' | 'mysql-pipe' | 'mysql-bare-relay';

interface CountSystem {
  proxy: ProxyName;
  label: string;
  run(limit: RunLimit): Promise<WorkloadResult>;
  /** Logins only (one query each): warms up the login path, which every measured run also takes once. */
  logins(limit: RunLimit): Promise<WorkloadResult>;
}

interface CountWorkload {
  scenario: ScenarioNumber;
  name: string;
  command: string;
  /** Transactions in a long measured run (N); a short run has N/10. */
  events: number;
  /** Rows are compared with this system's count (the first one present). */
  reference: ProxyName[];
  systems: CountSystem[];
}

export interface CountRow {
  label: string;
  proxy: ProxyName;
  /** User-space instructions per transaction, all threads. */
  instructions?: number;
  /** The part on the process's first thread (Node.js: the event loop; V8 compiles and collects garbage on others too). */
  mainThread?: number;
  syscalls?: number;
  /** (max − min) / median of the long runs' instruction counts: how much one-offs moved them. */
  spread?: number;
  failure?: string;
}

export interface CountResult {
  scenario: ScenarioNumber;
  name: string;
  command: string;
  events: number;
  reference: ProxyName[];
  rows: CountRow[];
}

const roundsOf = (o: BenchOptions): number => (o.quick ? 3 : 5);

/** How the counts are made, for the report. */
export function countMethod(o: BenchOptions): string {
  return 'Each proxy runs under `valgrind --tool=callgrind`; one client. Per workload and proxy: an unrecorded warm-up of ' +
    `${WARM_LOGINS} logins and ${WARM_UP}N transactions (V8 optimises the login path and the relay), then ${roundsOf(o)} rounds of ` +
    'a run of N and a run of N/10 transactions, each between `callgrind_control --zero` and `--dump`. A row is (fewest ' +
    'instructions of an N run − fewest of an N/10 run) / (N − N/10): the client\'s login and the start and end of a run cancel ' +
    'out, and one-offs that only ever add (a major GC, V8 optimising a function on its compiler thread) are left out. ' +
    'Instructions are the proxy process\'s own, all threads, user space only, with the main thread\'s part beside them (for Node.js ' +
    'the event loop: V8 also compiles and collects garbage on other threads, which on login paths can outweigh the work itself); ' +
    'the kernel\'s TCP work is not counted (the system ' +
    'calls stand for it; under valgrind they include clock reads). One client, so no proxy batches several clients\' messages ' +
    'into one event-loop turn. "× reference" is a row over the workload\'s reference row; "spread" is (max − min) / median of ' +
    'the N runs, i.e. how much the one-offs weighed.';
}

/** Warm-up, in long runs: V8 goes on optimising a relay's functions for the first few thousand transactions. */
const WARM_UP = 5;
/**
 * Logins before the warm-up: each measured run logs in once, and without this the login path's
 * functions would still be reaching V8's optimising compiler at random moments of the measured runs.
 */
const WARM_LOGINS = 200;

const PIPE_LABEL = 'reference: bare Node.js pipe (no protocol)';
const TLS_PIPE_LABEL = 'reference: bare Node.js relay terminating TLS (no protocol)';
const BARE_RELAY_LABEL = 'reference: bare Node.js MySQL login relay';
const BOUNCER_LABELS: Partial<Record<ProxyName, string>> = {
  'pgbouncer-scram': 'pgbouncer session, SCRAM',
  'pgbouncer-plain': 'pgbouncer session, auth_type=plain',
  'pgbouncer-tls': 'pgbouncer session, SCRAM, client_tls_sslmode=require',
};

const METRICS_GATEWAY = { proxy: 'tokengate-metrics', label: 'tokengate, metrics on (listen.admin)' } as const;

/** Where the running proxies are; workloads ask when they run, after the proxies started. */
interface Running {
  gateway(name: GatewayName): BenchGateway;
  port(p: ProxyName): number;
}

function workloads(env: BenchEnvironment, o: BenchOptions, { gateway: gw, port }: Running): CountWorkload[] {
  const scale = o.quick ? 0.3 : 1;
  const n = (events: number): number => Math.max(20, Math.round(events * scale));
  // pgbouncer and the pipe take the database's own role and password; tokengate takes the token.
  const pg = (flags: string[]) => (target: () => PgTarget) => (limit: RunLimit) => runPgbench(target(), flags, limit);
  const out: CountWorkload[] = [];
  // With BASELINE, the baseline build's gateway is counted right after tokengate, on the same workload.
  const gateways: Array<{ proxy: GatewayName; label: string }> = [
    { proxy: 'tokengate', label: 'tokengate' },
    ...(env.baseline ? [{ proxy: BASELINE_ID, label: `${BASELINE_ID}, BASELINE=${env.baseline.ref}` } as const] : []),
  ];
  const pgWorkload = (scenario: ScenarioNumber, name: string, flags: string[], events: number, bouncers: ProxyName[], pipe?: ProxyName,
    sslmode: PgTarget['sslmode'] = 'disable'): void => {
    const w = pg(flags);
    const l = pg(['-S', '-C', '-c', '1', '-n']);
    const via = (p: ProxyName) => (): PgTarget => ({ ...pgTargetDirect(env, sslmode), port: port(p) });
    const systems: CountSystem[] = [];
    for (const b of bouncers) systems.push({ proxy: b, label: BOUNCER_LABELS[b]!, run: w(via(b)), logins: l(via(b)) });
    // Metrics cost per statement: counted next to tokengate on the two relay workloads.
    const counted = scenario === '1' || scenario === '2' ? [...gateways, METRICS_GATEWAY] : gateways;
    for (const g of counted) {
      const target = (): PgTarget => pgTargetGateway(env, gw(g.proxy), sslmode);
      systems.push({ proxy: g.proxy, label: g.label, run: w(target), logins: l(target) });
    }
    if (pipe) systems.push({ proxy: pipe, label: pipe === 'node-tls-pipe' ? TLS_PIPE_LABEL : PIPE_LABEL, run: w(via(pipe)), logins: l(via(pipe)) });
    const command = `${sslmode === 'disable' ? '' : `PGSSLMODE=${sslmode} `}pgbench ${flags.join(' ')} -t <N>`;
    out.push({ scenario, name, command, events: n(events), reference: ['pgbouncer-scram', 'pgbouncer-plain', 'pgbouncer-tls'], systems });
  };
  pgWorkload('1', 'select-only', ['-S', '-c', '1', '-n'], 1000, ['pgbouncer-scram'], 'node-pipe');
  pgWorkload('2', 'TPC-B', ['-c', '1', '-n'], 300, ['pgbouncer-scram'], 'node-pipe');
  pgWorkload('3', 'connect per transaction', ['-S', '-C', '-c', '1', '-n'], 150, ['pgbouncer-scram', 'pgbouncer-plain']);
  pgWorkload('6', 'select-only over TLS', ['-S', '-c', '1', '-n'], 1000, ['pgbouncer-tls'], 'node-tls-pipe', 'require');
  const m = env.mariadb;
  if (m) {
    const sys = (test: string, extra: string[]) => (target: () => MysqlTarget) => (limit: RunLimit) =>
      runSysbench(target(), { test, threads: 1, tableSize: m.tableSize, extra }, limit);
    const via = (p: ProxyName) => (): MysqlTarget => ({ ...mysqlTargetDirect(m), port: port(p) });
    const gatewayRows = (run: (target: () => MysqlTarget) => CountSystem['run'], logins: (target: () => MysqlTarget) => CountSystem['logins']): CountSystem[] =>
      gateways.map((g) => ({ proxy: g.proxy, label: g.label, run: run(() => mysqlTargetGateway(env, gw(g.proxy))), logins: logins(() => mysqlTargetGateway(env, gw(g.proxy))) }));
    const connectPerQuery = sys(path.join(env.root, 'test/bench/sysbench/connect_point_select.lua'), []);
    for (const [id, mode] of [['4t', 'disable'], ['4p', 'auto']] as const) {
      const s = sys('oltp_point_select', [`--db-ps-mode=${mode}`]);
      out.push({
        scenario: '4', name: `MariaDB point select, ${mode === 'disable' ? 'text' : 'prepared'} (${id})`,
        command: `sysbench oltp_point_select --threads=1 --db-ps-mode=${mode} --events=<N>`, events: n(1000), reference: ['mysql-pipe'],
        systems: [
          ...gatewayRows(s, connectPerQuery),
          { proxy: 'mysql-pipe', label: PIPE_LABEL, run: s(via('mysql-pipe')), logins: connectPerQuery(via('mysql-pipe')) },
        ],
      });
    }
    out.push({
      scenario: '5', name: 'MySQL connect per query', command: 'sysbench test/bench/sysbench/connect_point_select.lua --threads=1 --events=<N>',
      events: n(150), reference: ['mysql-bare-relay'],
      systems: [
        ...gatewayRows(connectPerQuery, connectPerQuery),
        { proxy: 'mysql-bare-relay', label: BARE_RELAY_LABEL, run: connectPerQuery(via('mysql-bare-relay')), logins: connectPerQuery(via('mysql-bare-relay')) },
      ],
    });
  }
  return out.filter((w) => o.scenarios.has(w.scenario));
}

/** Runs the selected scenarios' workloads against each proxy under callgrind. */
export async function countInstructions(env: BenchEnvironment, o: BenchOptions, log: Log): Promise<{ results: CountResult[]; notes: string[] }> {
  const notes: string[] = [];
  if (!which('valgrind') || !which('callgrind_control')) {
    return { results: [], notes: ['INSTRUCTIONS=1 needs valgrind (apt-get install valgrind): nothing was counted'] };
  }
  const outDir = path.join(env.dir, 'callgrind');
  mkdirSync(outDir, { recursive: true });
  chmodSync(outDir, 0o777); // pgbouncer writes its dumps after dropping to the postgres user
  // valgrind keeps temporary files, and vgdb the FIFOs callgrind_control talks through, in TMPDIR, as the
  // proxy's user: pgbouncer's (postgres) may not write to the caller's TMPDIR, so all of them use this one.
  const valgrindTmp = path.join(env.dir, 'valgrind-tmp');
  mkdirSync(valgrindTmp, { recursive: true });
  chmodSync(valgrindTmp, 0o1777);
  const callerTmp = process.env.TMPDIR;
  process.env.TMPDIR = valgrindTmp;
  const wrapper = (name: string): Wrapper => ({
    command: ['valgrind', '--tool=callgrind', '--smc-check=all-non-file', '--collect-systime=yes', '--separate-threads=yes', `--callgrind-out-file=${path.join(outDir, `${name}.out`)}`],
    startTimeoutMs: 300_000,
  });

  const running = new Map<ProxyName, CountedProxy>();
  const gateways = new Map<GatewayName, BenchGateway>();
  const list = workloads(env, o, {
    gateway: (name) => {
      const g = gateways.get(name);
      if (!g) throw new Error(`${name} is not running`);
      return g;
    },
    port: (p) => {
      const port = running.get(p)?.port;
      if (port === undefined) throw new Error(`${p} is not running`);
      return port;
    },
  });
  const wanted = new Set(list.flatMap((w) => w.systems.map((s) => s.proxy)));
  const hasBouncer = !!which('pgbouncer', ['/usr/sbin']);
  if (!hasBouncer) notes.push('pgbouncer is not installed (apt-get install pgbouncer): its rows are not counted');
  const mysqlSkip = env.missing.mariadb ?? env.missing.sysbench ?? env.missing.gatewayMysql;

  const start = async (p: ProxyName): Promise<void> => {
    log(`starting ${p} under callgrind`);
    const common = { upstream: env.pg, poolSize: POOL_SIZE };
    let proxy: CountedProxy;
    switch (p) {
      case 'tokengate':
      case 'tokengate-metrics':
      case BASELINE_ID: {
        const root = p === BASELINE_ID ? env.baseline!.dir : env.root;
        const gateway = await startBenchGateway({
          ...env.gatewayOptions, root, name: `${p}-callgrind`, dir: path.join(env.dir, `${p}-callgrind`), auditQueries: false, wrapper: wrapper(p), fetchTimeout: '60s',
          metrics: p === 'tokengate-metrics',
        });
        gateways.set(p, gateway);
        proxy = gateway;
        break;
      }
      case 'pgbouncer-scram':
      case 'pgbouncer-plain':
      case 'pgbouncer-tls': {
        const b = await startPgbouncer({
          ...common, name: `${p}-callgrind`, dir: path.join(env.dir, `${p}-callgrind`), auth: p === 'pgbouncer-plain' ? 'plain' : 'scram-sha-256',
          tls: p === 'pgbouncer-tls' ? env.cert : undefined, wrapper: wrapper(p),
        });
        proxy = { ...b, controlAs: AS_POSTGRES };
        break;
      }
      case 'node-tls-pipe': {
        proxy = await startNodeTlsPipe(env.dir, env.pg.port, env.cert, `${p}-callgrind`, wrapper(p));
        break;
      }
      case 'node-pipe':
      case 'mysql-pipe': {
        const up = p === 'node-pipe' ? env.pg.port : env.mariadb!.port;
        const pipe: NodePipe = await startNodePipe(env.dir, up, `${p}-callgrind`, wrapper(p));
        proxy = pipe;
        break;
      }
      case 'mysql-bare-relay': {
        const relay: MysqlBareRelay = await startMysqlBareRelay(env.dir, env.mariadb!, wrapper(p));
        proxy = relay;
        break;
      }
    }
    running.set(p, proxy);
  };

  const rounds = roundsOf(o);
  const results: CountResult[] = [];
  try {
    for (const p of wanted) {
      if (p.startsWith('pgbouncer') && !hasBouncer) continue;
      if ((p === 'mysql-pipe' || p === 'mysql-bare-relay') && mysqlSkip) continue;
      await start(p);
    }
    for (const w of list) {
      const result: CountResult = { scenario: w.scenario, name: w.name, command: w.command, events: w.events, reference: w.reference, rows: [] };
      results.push(result);
      if (w.scenario === '4' || w.scenario === '5') {
        if (mysqlSkip) {
          notes.push(`${w.name}: not counted: ${mysqlSkip}`);
          continue;
        }
      }
      for (const s of w.systems) {
        const proxy = running.get(s.proxy);
        if (!proxy) continue;
        const row: CountRow = { label: s.label, proxy: s.proxy };
        result.rows.push(row);
        try {
          const short = Math.max(2, Math.round(w.events / 10));
          log(`counting ${w.name}: ${s.label} (warm-up of ${WARM_LOGINS} logins and ${WARM_UP * w.events} transactions, then ${rounds} rounds of ${w.events} and ${short})`);
          await s.logins({ events: WARM_LOGINS });
          await s.run({ events: WARM_UP * w.events });
          const long: Counted[] = [];
          const brief: Counted[] = [];
          for (let i = 0; i < rounds; i++) {
            long.push(await measure(proxy, outDir, () => s.run({ events: w.events })));
            brief.push(await measure(proxy, outDir, () => s.run({ events: short })));
          }
          log(`  runs of ${w.events}: ${long.map((c) => (c.instructions / 1e6).toFixed(1)).join(', ')} M; of ${short}: ${brief.map((c) => (c.instructions / 1e6).toFixed(1)).join(', ')} M instructions`);
          const per = (k: keyof Counted): number => (Math.min(...long.map((c) => c[k])) - Math.min(...brief.map((c) => c[k]))) / (w.events - short);
          row.instructions = per('instructions');
          row.mainThread = per('mainThread');
          row.syscalls = per('syscalls');
          row.spread = spread(long.map((c) => c.instructions));
          log(`  ${Math.round(row.instructions).toLocaleString('en-US')} instructions, ${row.syscalls.toFixed(1)} system calls per transaction`);
        } catch (err) {
          row.failure = (err as Error).message;
          log(`  failed: ${row.failure}`);
        }
      }
    }
  } finally {
    for (const p of running.values()) await p.stop();
    if (callerTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = callerTmp;
  }
  return { results, notes };
}

function spread(xs: number[]): number {
  return (Math.max(...xs) - Math.min(...xs)) / median(xs);
}

interface Counted {
  instructions: number;
  mainThread: number;
  syscalls: number;
}

/**
 * Zero the proxy's counters, run the workload, dump them, and read the dump's totals. With
 * --separate-threads a dump is one file per thread, `<name>.out.<dump>-<thread>`; thread 01 is the main one.
 */
async function measure(proxy: CountedProxy, outDir: string, work: () => Promise<WorkloadResult>): Promise<Counted> {
  await control(proxy, '--zero');
  const before = new Set(readdirSync(outDir));
  const r = await work();
  if (r.errors > 0) throw new Error(`${r.errors} transactions failed`);
  await control(proxy, '--dump');
  const files = readdirSync(outDir).filter((f) => !before.has(f));
  const threads = files.map((f) => ({ f, m: /\.(\d+)-(\d+)$/.exec(f) }));
  const dumps = new Set(threads.map((t) => t.m?.[1]));
  if (files.length === 0 || dumps.size !== 1 || dumps.has(undefined)) {
    throw new Error(`expected one new callgrind dump (a file per thread) in ${outDir}, found ${files.join(', ') || 'none'}`);
  }
  let instructions = 0;
  let syscalls = 0;
  let mainThread: number | undefined;
  for (const t of threads) {
    const c = readTotals(path.join(outDir, t.f));
    instructions += c.instructions;
    syscalls += c.syscalls;
    if (Number(t.m![2]) === 1) mainThread = c.instructions;
  }
  if (mainThread === undefined) throw new Error(`the callgrind dump in ${outDir} has no file for thread 01: ${files.join(', ')}`);
  return { instructions, mainThread, syscalls };
}

async function control(proxy: CountedProxy, action: '--zero' | '--dump'): Promise<void> {
  const [cmd, ...args] = [...(proxy.controlAs ?? []), 'callgrind_control', action, String(proxy.pid)];
  const r = await run(cmd, args, { timeoutMs: 60_000 });
  if (r.code !== 0 || !/OK/.test(r.stdout)) throw new Error(`callgrind_control ${action} ${proxy.pid} failed: ${(r.stderr || r.stdout).trim()}`);
}

/** The `summary:` line of a callgrind dump (one thread's), by the names on its `events:` line. */
export function readTotals(file: string): { instructions: number; syscalls: number } {
  const text = readFileSync(file, 'utf8');
  const events = /^events:\s*(.+)$/m.exec(text)?.[1].trim().split(/\s+/);
  const summary = /^summary:\s*(.+)$/m.exec(text)?.[1].trim().split(/\s+/).map(Number);
  if (!events || !summary) throw new Error(`${file} has no events/summary lines`);
  const value = (name: string): number => {
    const i = events.indexOf(name);
    if (i < 0) throw new Error(`${file} does not count ${name} (events: ${events.join(' ')})`);
    return summary[i] ?? 0;
  };
  return { instructions: value('Ir'), syscalls: value('sysCount') };
}

/** tokengate over tokengate-baseline, workload by workload (BASELINE=<ref>). */
export function baselineCountTable(results: CountResult[]): string {
  const lines = [
    '| # | workload | tokengate instructions | baseline instructions | tokengate / baseline | main thread: tokengate / baseline | system calls: tokengate / baseline |',
    '|---|---|---:|---:|---:|---:|---|',
  ];
  for (const r of results) {
    const a = r.rows.find((row) => row.proxy === 'tokengate');
    const b = r.rows.find((row) => row.proxy === BASELINE_ID);
    if (!a || !b) continue;
    const count = (row: CountRow): string => (row.instructions === undefined ? 'failed' : Math.round(row.instructions).toLocaleString('en-US'));
    const both = a.instructions !== undefined && b.instructions !== undefined;
    const main = a.mainThread !== undefined && b.mainThread !== undefined ? (a.mainThread / b.mainThread).toFixed(3) : '';
    lines.push(`| ${r.scenario} | ${r.name} | ${count(a)} | ${count(b)} | ${both ? (a.instructions! / b.instructions!).toFixed(3) : ''} | ${main} | ` +
      `${a.syscalls !== undefined && b.syscalls !== undefined ? `${a.syscalls.toFixed(1)} / ${b.syscalls.toFixed(1)}` : ''} |`);
  }
  return lines.join('\n');
}

/** Markdown table of the counts, each row against the workload's reference. */
export function countTable(results: CountResult[]): string {
  const lines = [
    '| # | workload | system | instructions per transaction (user space) | × reference | of which on the main thread | system calls per transaction | spread of the long runs |',
    '|---|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const ref = r.reference.map((p) => r.rows.find((row) => row.proxy === p && row.instructions !== undefined)).find(Boolean);
    for (const row of r.rows) {
      const ratio = ref && row.instructions !== undefined && ref !== row ? (row.instructions / ref.instructions!).toFixed(2) : '';
      const count = row.failure ? `failed: ${row.failure}` : Math.round(row.instructions!).toLocaleString('en-US');
      const sys = row.syscalls === undefined ? '' : row.syscalls.toFixed(1);
      const sp = row.spread === undefined ? '' : `${(row.spread * 100).toFixed(1)}%`;
      const main = row.mainThread === undefined ? '' : Math.round(row.mainThread).toLocaleString('en-US');
      lines.push(`| ${r.scenario} | ${r.name} | ${row.label}${ref === row ? ' (reference)' : ''} | ${count} | ${ratio} | ${main} | ${sys} | ${sp} |`);
    }
  }
  return lines.join('\n');
}
