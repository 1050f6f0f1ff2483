/**
 * PROFILE=1: run a dedicated gateway under `node --cpu-prof` for one workload and say where its
 * time went. The V8 profile shows the JavaScript call tree (wall-clock samples of the main
 * thread); when `perf` is installed, a `perf record` of the same run adds the on-CPU split
 * between the kernel, Node's C++ and JIT-compiled JavaScript.
 */
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { mysqlTargetGateway, pgTargetGateway, type BenchEnvironment } from './environment';
import type { BenchOptions } from './options';
import { run, which } from './proc';
import { profileMarkdown, summarizeProfile } from './profile';
import type { Log } from './runner';
import { startBenchGateway, type BenchGateway } from './services/gateway';
import { whileScraping } from './services/metricsScraper';
import { runPgbench, runSysbench, type WorkloadResult } from './workloads';

export interface ProfileWorkload {
  name: string;
  title: string;
  protocol: 'postgres' | 'mysql';
  /** Run the gateway with listen.admin set (metrics collected) and scrape /metrics as the bench's metrics row does. */
  metrics?: boolean;
  run(env: BenchEnvironment, gw: BenchGateway, seconds: number): Promise<WorkloadResult>;
}

const SELECT_ONLY = ['-S', '-c', '16', '-j', '2', '-n'];
const pgbench = (flags: string[]): ProfileWorkload['run'] => (env, gw, seconds) => runPgbench(pgTargetGateway(env, gw), flags, seconds);

export const PROFILE_WORKLOADS: ProfileWorkload[] = [
  { name: 'select-only', title: 'select-only (pgbench -S -c 16 -j 2)', protocol: 'postgres', run: pgbench(SELECT_ONLY) },
  {
    name: 'select-only-metrics', title: 'select-only (pgbench -S -c 16 -j 2), metrics on and /metrics scraped every second', protocol: 'postgres', metrics: true,
    run: (env, gw, seconds) => whileScraping(gw.adminPort!, () => runPgbench(pgTargetGateway(env, gw), SELECT_ONLY, seconds)),
  },
  { name: 'tpcb', title: 'TPC-B (pgbench -c 8 -j 2)', protocol: 'postgres', run: pgbench(['-c', '8', '-j', '2', '-n']) },
  { name: 'connect-per-tx', title: 'connect per transaction (pgbench -S -C -c 8 -j 2)', protocol: 'postgres', run: pgbench(['-S', '-C', '-c', '8', '-j', '2', '-n']) },
  {
    name: 'mysql-point-select', title: 'MariaDB point select, text (sysbench oltp_point_select --threads=16)', protocol: 'mysql',
    run: (env, gw, seconds) => runSysbench(mysqlTargetGateway(env, gw),
      { test: 'oltp_point_select', threads: 16, tableSize: env.mariadb!.tableSize, extra: ['--db-ps-mode=disable'] }, seconds),
  },
  {
    name: 'mysql-point-select-ps', title: 'MariaDB point select, prepared (sysbench oltp_point_select --threads=16 --db-ps-mode=auto)', protocol: 'mysql',
    run: (env, gw, seconds) => runSysbench(mysqlTargetGateway(env, gw),
      { test: 'oltp_point_select', threads: 16, tableSize: env.mariadb!.tableSize, extra: ['--db-ps-mode=auto'] }, seconds),
  },
  {
    name: 'mysql-connect-per-query', title: 'MySQL connect per query (sysbench connect_point_select.lua --threads=8)', protocol: 'mysql',
    run: (env, gw, seconds) => runSysbench(mysqlTargetGateway(env, gw),
      { test: path.join(env.root, 'test/bench/sysbench/connect_point_select.lua'), threads: 8, tableSize: env.mariadb!.tableSize }, seconds),
  },
];

/** Returns the markdown summary; the .cpuprofile is kept in `outDir` for flame graphs (Chrome DevTools, speedscope). */
export async function profileGateway(env: BenchEnvironment, o: BenchOptions, w: ProfileWorkload, outDir: string, stamp: string, log: Log): Promise<string> {
  const profDir = mkdtempSync(path.join(env.dir, `prof-${w.name}-`));
  const gw = await startBenchGateway({
    ...env.gatewayOptions, mariadb: w.protocol === 'mysql' ? env.mariadb : undefined,
    name: `tokengate-profile-${w.name}`, dir: path.join(profDir, 'gateway'), auditQueries: false, cpuProfileDir: profDir, metrics: w.metrics,
  });
  let result: WorkloadResult;
  let perf: string;
  try {
    await w.run(env, gw, o.warmupSeconds);
    log(`profiling the gateway: ${w.name}, ${o.seconds}s`);
    const perfRun = perfRecord(gw.pid, o.seconds, path.join(profDir, 'perf.data'));
    result = await w.run(env, gw, o.seconds);
    perf = await perfRun;
  } finally {
    await gw.stop(); // the V8 profile is written when the process exits
  }
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`node --cpu-prof wrote no profile into ${profDir}; gateway log: ${gw.daemon.logFile}`);
  mkdirSync(outDir, { recursive: true });
  const kept = path.join(outDir, `${stamp}-${w.name}.cpuprofile`);
  renameSync(path.join(profDir, file), kept);
  rmSync(profDir, { recursive: true, force: true });
  const header = `Gateway profile: ${w.title}, ${result.tps.toFixed(0)} tps while profiled`;
  return `${profileMarkdown(summarizeProfile(kept), header)}\n\n${perf}\n\nFull V8 profile: \`${path.relative(env.root, kept)}\`.`;
}

/** `perf record` of the gateway process for `seconds`; resolves to a markdown summary (or why there is none). */
async function perfRecord(pid: number, seconds: number, file: string): Promise<string> {
  if (!which('perf')) return 'On-CPU split: not measured (`perf` is not installed; apt-get install linux-perf).';
  const rec = await run('perf', ['record', '-F', '499', '-p', String(pid), '-o', file, '--', 'sleep', String(seconds)], { timeoutMs: (seconds + 60) * 1000 });
  if (rec.code !== 0) return `On-CPU split: perf record failed (${rec.stderr.trim().split('\n').pop()}).`;
  const report = async (sort: string): Promise<Array<{ pct: number; name: string }>> => {
    const r = await run('perf', ['report', '-i', file, '--no-children', '--sort', sort, '--stdio'], { timeoutMs: 60_000 });
    return r.stdout.split('\n').flatMap((line) => {
      const m = /^\s+([\d.]+)%\s+(.*\S)\s*$/.exec(line);
      return m ? [{ pct: Number(m[1]), name: m[2] }] : [];
    });
  };
  const dsos = await report('dso');
  const syms = (await report('sym')).slice(0, 12);
  const dsoName = (d: string): string =>
    d === '[kernel.kallsyms]' ? 'kernel (TCP loopback send/receive, wake-ups, scheduling)'
      : d === 'node' ? 'node binary (C++ runtime, libuv, V8 runtime and GC)'
        : d.startsWith('[JIT]') ? 'JIT-compiled JavaScript'
          : d;
  return [
    'On-CPU split of the same run (`perf record -F 499`, all threads of the gateway process):',
    '',
    '| where the CPU went | share |',
    '|---|---:|',
    ...dsos.slice(0, 6).map((d) => `| ${dsoName(d.name)} | ${d.pct.toFixed(1)}% |`),
    '',
    '| hottest symbols on-CPU | share |',
    '|---|---:|',
    ...syms.map((s) => `| \`${s.name.replace(/\|/g, '\\|')}\` | ${s.pct.toFixed(1)}% |`),
  ].join('\n');
}
