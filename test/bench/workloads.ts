/**
 * The load generators: pgbench and sysbench command lines, and what their output says.
 * A target is where a client connects and with which credentials; the same workload runs
 * against every target of a scenario.
 */
import { run, tail } from './proc';

export interface PgTarget {
  host: string;
  port: number;
  user: string;
  database: string;
  /** A password, or an access token for tokengate. Passed in PGPASSWORD, never on the command line. */
  password: string;
  /**
   * libpq's sslmode. `prefer` is pgbench's default: TLS whenever the server (or the proxy) has a
   * certificate and answers the SSLRequest with 'S', plaintext when it answers 'N'.
   */
  sslmode: 'disable' | 'prefer' | 'require';
}

export interface MysqlTarget {
  host: string;
  port: number;
  user: string;
  database: string;
  /** sysbench has no environment variable for it, so it is an argument (a throwaway dev token in this harness). */
  password: string;
}

export interface WorkloadResult {
  /** Transactions (pgbench) or events (sysbench) per second, as the tool reports it. */
  tps: number;
  transactions: number;
  /** Failed transactions or ignored errors the tool counted. */
  errors: number;
  /** Something the reader of the results should know about this run. */
  note?: string;
}

/** How long a run lasts: seconds, or a number of transactions (pgbench: per client) / events (sysbench: in all). */
export type RunLimit = number | { events: number };

/** Seconds a run may take before it is killed. */
function runTimeoutMs(limit: RunLimit): number {
  return (typeof limit === 'number' ? limit + 120 : limit.events * 0.25 + 120) * 1000;
}

export class WorkloadError extends Error {}
class PluginRaceError extends WorkloadError {}

export async function runPgbench(t: PgTarget, flags: string[], limit: RunLimit): Promise<WorkloadResult> {
  const duration = typeof limit === 'number' ? ['-T', String(limit)] : ['-t', String(limit.events)];
  const args = [...flags, ...duration, '-h', t.host, '-p', String(t.port), '-U', t.user, t.database];
  const r = await run('pgbench', args, {
    env: { PGPASSWORD: t.password, PGSSLMODE: t.sslmode, PGCONNECT_TIMEOUT: '30', PGAPPNAME: 'pgbench' },
    timeoutMs: runTimeoutMs(limit),
  });
  const tps = /^tps = ([\d.]+)/m.exec(r.stdout);
  const processed = /number of transactions actually processed: (\d+)/.exec(r.stdout);
  if (r.code !== 0 || !tps || !processed) {
    throw new WorkloadError(`pgbench ${flags.join(' ')} against ${t.host}:${t.port} failed (exit ${r.code}): ${tail(r.stderr || r.stdout, 400)}`);
  }
  const failed = /number of failed transactions: (\d+)/.exec(r.stdout);
  return { tps: Number(tps[1]), transactions: Number(processed[1]), errors: failed ? Number(failed[1]) : 0 };
}

export interface SysbenchRun {
  /** A bundled test name (oltp_point_select) or a path to a Lua script. */
  test: string;
  threads: number;
  tableSize: number;
  extra?: string[];
}

/**
 * libmariadb registers its built-in mysql_clear_password plugin on first use without a lock, so
 * when many sysbench threads get the AuthSwitch at the same moment one may fail with
 * "Plugin mysql_clear_password could not be loaded: it is already loaded". That is the client
 * library, not the server or the gateway: the run is retried.
 */
const CLEARTEXT_PLUGIN_RACE = /mysql_clear_password could not be loaded: it is already loaded/;

export async function runSysbench(t: MysqlTarget, s: SysbenchRun, limit: RunLimit): Promise<WorkloadResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await runSysbenchOnce(t, s, limit);
      return attempt > 1 ? { ...r, note: `retried ${attempt - 1}× after libmariadb's mysql_clear_password plugin-loading race at thread start` } : r;
    } catch (err) {
      if (attempt >= 4 || !(err instanceof PluginRaceError)) throw err;
    }
  }
}

async function runSysbenchOnce(t: MysqlTarget, s: SysbenchRun, limit: RunLimit): Promise<WorkloadResult> {
  const duration = typeof limit === 'number' ? [`--time=${limit}`] : [`--events=${limit.events}`, '--time=0'];
  const args = [
    s.test, '--db-driver=mysql', `--mysql-host=${t.host}`, `--mysql-port=${t.port}`, `--mysql-user=${t.user}`,
    `--mysql-password=${t.password}`, `--mysql-db=${t.database}`, '--tables=1', `--table-size=${s.tableSize}`,
    `--threads=${s.threads}`, ...duration, '--report-interval=0', ...(s.extra ?? []), 'run',
  ];
  const r = await run('sysbench', args, { timeoutMs: runTimeoutMs(limit) });
  const m = /transactions:\s+(\d+)\s+\(([\d.]+) per sec/.exec(r.stdout);
  if (r.code !== 0 || !m) {
    // The password argument is never quoted back: only sysbench's own messages.
    const E = CLEARTEXT_PLUGIN_RACE.test(r.stdout + r.stderr) ? PluginRaceError : WorkloadError;
    throw new E(`sysbench ${s.test} against ${t.host}:${t.port} failed (exit ${r.code}): ${tail(scrub(r.stdout + r.stderr, t.password), 400)}`);
  }
  const ignored = /ignored errors:\s+(\d+)/.exec(r.stdout);
  return { tps: Number(m[2]), transactions: Number(m[1]), errors: ignored ? Number(ignored[1]) : 0 };
}

function scrub(text: string, secret: string): string {
  return secret ? text.split(secret).join('<token>') : text;
}
