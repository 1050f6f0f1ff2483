/**
 * `make bench`: tokengate against direct connections and pgbouncer, in one run, on this machine.
 * Prints a markdown report (also saved under .tmp/bench/). Benchmarks are not tests: nothing
 * here passes or fails; the targets table says where the ratios stand.
 *
 * Environment: QUICK=1 (one 5 s round), SCENARIOS=1,3,7 (a subset), ROUNDS=n and DURATION=s
 * (override rounds and seconds per run), PROFILE=1 (also profile the gateway with node
 * --cpu-prof; PROFILES=name,... only those workloads), KEEP=1 (keep the temporary servers'
 * directory), INSTRUCTIONS=1 (count each proxy's instructions per transaction under callgrind
 * instead of measuring throughput), GATEWAY_NODE_FLAGS (V8 flags for the gateway processes),
 * BASELINE=<git ref> (also build that revision and run it as the row tokengate-baseline next to
 * tokengate).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildBaseline, type BaselineBuild } from './baseline';
import { setUpEnvironment, POOL_SIZE, type BenchEnvironment } from './environment';
import { baselineCountTable, countInstructions, countMethod, countTable, type CountResult } from './instructions';
import { describeMachine, uptimeLine } from './machine';
import { parseOptions, type BenchOptions } from './options';
import { repoRoot } from './proc';
import { PROFILE_WORKLOADS, profileGateway } from './profileRun';
import { baselineTable, latencyTable, targetTable, throughputTable, workloadList, type LatencyResult, type ThroughputResult } from './report';
import { runLatency, runThroughput } from './runner';
import { BASELINE_ID, latencySystems, TARGETS, throughputScenarios } from './scenarios';

const started = Date.now();
const log = (line: string): void => {
  const s = Math.round((Date.now() - started) / 1000);
  process.stderr.write(`[bench ${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}] ${line}\n`);
};

interface Report {
  options: BenchOptions;
  machine: ReturnType<typeof describeMachine>;
  uptimeStart: string;
  uptimeEnd: string;
  throughput: ThroughputResult[];
  latency: LatencyResult[];
  counts: CountResult[];
  notes: string[];
  profiles: string[];
  baseline?: { ref: string; commit: string; describe: string; reusedModules: boolean };
}

function baselineLine(r: Report): string[] {
  const b = r.baseline;
  if (!b) return [];
  return [`Baseline: \`${BASELINE_ID}\` is ${b.describe}, commit ${b.commit}, built in a temporary git worktree ` +
    `(${b.reusedModules ? 'with this checkout\'s node_modules: same package-lock.json' : 'npm ci: its package-lock.json differs'}); ` +
    'it runs with the same generated config as `tokengate`, right after it in odd rounds and right before it in even ones.'];
}

function renderReport(r: Report): string {
  const m = r.machine;
  const o = r.options;
  if (o.instructions) return renderCountReport(r);
  const lines = [
    `### tokengate benchmark, ${new Date(started).toISOString().replace(/\.\d+Z$/, 'Z')}`,
    '',
    `Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.kernel}; node ${m.node}; ${m.postgres}; ${m.pgbench}; ${m.pgbouncer}; ${m.mariadb}; ${m.sysbench}.`,
    `Run: ${o.rounds} round(s) × ${o.seconds} s per system, interleaved, after a ${o.warmupSeconds} s warm-up; medians. ` +
      `Pools: ${POOL_SIZE} upstream connections (pgbouncer default_pool_size, tokengate maxConnections). pgbench scale ${o.pgbenchScale}; sysbench table ${o.sysbenchTableSize} rows.`,
    `Load at start: \`${r.uptimeStart}\`; at end: \`${r.uptimeEnd}\`.`,
    ...baselineLine(r),
    '',
    throughputTable(r.throughput),
    '',
    '"proxy CPU µs/tx (kernel)" is user+system CPU of the proxy process (tokengate, pgbouncer or a reference) per transaction, ' +
      'from /proc/PID/stat, with the system (kernel) part in parentheses. ' +
      '"× direct" and "× pgbouncer" are a row\'s median over the scenario\'s direct and first pgbouncer medians (SCRAM; in scenario 6 the TLS one). ' +
      'The reference rows show the runtime\'s own cost: in scenarios 1, 2 and 4 a bare Node.js relay that forwards bytes and nothing else (the client logs in to the server through it); ' +
      'in scenario 5 a bare Node.js program that exchanges the same login messages as tokengate and relays raw bytes over the ' +
      'same reset, pooled upstream sessions, with no token check, grants or audit; in scenario 6 a bare Node.js relay that terminates the ' +
      'client\'s TLS (node:tls) and forwards the plaintext to PostgreSQL.',
    '',
    workloadList(r.throughput),
    '',
    targetTable(TARGETS, r.throughput),
  ];
  if (r.baseline) {
    lines.push('', `tokengate against \`${BASELINE_ID}\` (${r.baseline.describe}): each round's ratio, then their median; ` +
      'CPU is the gateway process\'s user+system time per transaction (below 1: tokengate spends less):', '', baselineTable(r.throughput, BASELINE_ID));
  }
  if (r.latency.length) {
    lines.push('', `Scenario 7, login latency (TCP connect to ReadyForQuery / OK; node-postgres and mysql2 clients, sequential, ${o.logins} per round):`, '', latencyTable(r.latency));
  }
  const notes = [...r.notes, ...r.throughput.flatMap((t) => t.notes.map((n) => `scenario ${t.id}: ${n}`))];
  if (notes.length) lines.push('', 'Notes:', '', ...notes.map((n) => `- ${n}`));
  for (const p of r.profiles) lines.push('', p);
  return lines.join('\n') + '\n';
}

function renderCountReport(r: Report): string {
  const m = r.machine;
  const lines = [
    `### tokengate instruction counts, ${new Date(started).toISOString().replace(/\.\d+Z$/, 'Z')}`,
    '',
    `Machine: ${m.cpus} × ${m.cpuModel}, ${m.kernel}; node ${m.node}; ${m.pgbouncer}; ${m.mariadb}; ${m.sysbench}.`,
    countMethod(r.options),
    ...baselineLine(r),
    '',
    countTable(r.counts),
    '',
    ...(r.baseline ? [`tokengate against \`${BASELINE_ID}\` (${r.baseline.describe}), instructions and system calls per transaction:`, '', baselineCountTable(r.counts), ''] : []),
    ...r.counts.map((c) => `- ${c.scenario} ${c.name}: \`${c.command}\`, N = ${c.events}`),
  ];
  if (r.notes.length) lines.push('', 'Notes:', '', ...r.notes.map((n) => `- ${n}`));
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const o = parseOptions();
  const root = repoRoot();
  if (!existsSync(path.join(root, 'dist/src/cli/main.js'))) {
    throw new Error('tokengate is not built: run `npm run build` first (`make bench` does it)');
  }
  const wants = (...s: string[]): boolean => s.some((x) => o.scenarios.has(x as never));
  const uptimeStart = uptimeLine();
  log(`${o.quick ? 'QUICK: ' : ''}scenarios ${[...o.scenarios].join(',')}, ${o.rounds} round(s) × ${o.seconds}s; ${uptimeStart}`);
  // INSTRUCTIONS=1 starts its own proxies under valgrind: of the usual ones only the gateway is needed.
  const measuring = !o.instructions;
  const baseline: BaselineBuild | undefined = o.baseline ? await buildBaseline(root, o.baseline, log) : undefined;
  const removeBaseline = async (): Promise<void> => {
    if (!baseline) return;
    if (o.keep) log(`kept the baseline worktree ${baseline.dir} (remove it with: git worktree remove --force ${baseline.dir})`);
    else await baseline.remove().catch((err: Error) => log(`could not remove the baseline worktree: ${err.message}`));
  };
  const profiled = o.profile ? PROFILE_WORKLOADS.filter((w) => !o.profileWorkloads || o.profileWorkloads.has(w.name)) : [];
  let env: BenchEnvironment;
  try {
    env = await setUpEnvironment(o, root, {
      pgbouncer: measuring && wants('1', '2', '3', '6', '7'),
      mariadb: wants('4', '5', '7') || profiled.some((w) => w.protocol === 'mysql'),
      auditGateway: measuring && wants('1'),
      metricsGateway: measuring && wants('1'),
      workersGateway: measuring && wants('1', '3'),
      nodePipe: measuring && wants('1', '2'),
      mysqlPipe: measuring && wants('4'),
      mysqlBareRelay: measuring && wants('5'),
      nodeTlsPipe: measuring && wants('6'),
      baselineGateway: measuring,
    }, log, baseline);
  } catch (err) {
    await removeBaseline();
    throw err;
  }
  let stopping = false;
  const interrupt = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping the servers`);
    void env.stop().finally(removeBaseline).finally(() => process.exit(130));
  };
  process.on('SIGINT', () => interrupt('SIGINT'));
  process.on('SIGTERM', () => interrupt('SIGTERM'));
  try {
    const notes: string[] = [];
    if (env.missing.gatewayMysql) notes.push(env.missing.gatewayMysql);
    const throughput: ThroughputResult[] = [];
    let counts: CountResult[] = [];
    if (o.instructions) {
      const counted = await countInstructions(env, o, log);
      counts = counted.results;
      notes.push(...counted.notes);
    } else {
      for (const spec of throughputScenarios(env, o.scenarios)) throughput.push(await runThroughput(spec, o, log));
    }
    let latency: LatencyResult[] = [];
    if (measuring && o.scenarios.has('7')) {
      const { systems, notes: latencyNotes } = latencySystems(env);
      notes.push(...latencyNotes);
      latency = await runLatency(systems, o, log);
    }
    const stamp = new Date(started).toISOString().replace(/[:.]/g, '-').replace(/-\d+Z$/, 'Z');
    const outDir = path.join(root, '.tmp/bench');
    const profiles: string[] = [];
    if (measuring && o.profile) {
      for (const w of profiled) {
        if (w.protocol === 'mysql' && (!env.mariadb || env.missing.gatewayMysql || env.missing.sysbench)) {
          notes.push(`profile ${w.name} skipped: ${env.missing.gatewayMysql ?? env.missing.sysbench ?? 'MariaDB not started'}`);
          continue;
        }
        profiles.push(await profileGateway(env, o, w, path.join(outDir, 'profiles'), stamp, log));
      }
    }
    const report: Report = {
      options: o, machine: describeMachine(env.pgBin), uptimeStart, uptimeEnd: uptimeLine(), throughput, latency, counts, notes, profiles,
      baseline: baseline && { ref: baseline.ref, commit: baseline.commit, describe: baseline.describe, reusedModules: baseline.reusedModules },
    };
    const markdown = renderReport(report);
    mkdirSync(outDir, { recursive: true });
    writeFileSync(path.join(outDir, `report-${stamp}.md`), markdown);
    writeFileSync(path.join(outDir, `report-${stamp}.json`), JSON.stringify({ ...report, options: { ...o, scenarios: [...o.scenarios] } }, null, 2));
    process.stdout.write('\n' + markdown);
    log(`saved .tmp/bench/report-${stamp}.md and .json`);
  } finally {
    if (!stopping) {
      await env.stop();
      await removeBaseline();
    }
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    log(`failed: ${err.message}`);
    process.exit(1);
  },
);
