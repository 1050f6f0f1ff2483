/** What `make bench` was asked to do, from the environment (make passes its variables through). */

export const ALL_SCENARIOS = ['1', '2', '3', '4', '5', '6', '7'] as const;
export type ScenarioNumber = (typeof ALL_SCENARIOS)[number];

export interface BenchOptions {
  quick: boolean;
  rounds: number;
  /** Seconds per measured run. */
  seconds: number;
  /** Seconds of unrecorded load per system before a scenario's first round (JIT, pools, caches). */
  warmupSeconds: number;
  /** Logins per system per round in scenario 7. */
  logins: number;
  scenarios: Set<ScenarioNumber>;
  /** Also profile the gateway (node --cpu-prof, and perf when installed) under each PROFILE_WORKLOADS entry. */
  profile: boolean;
  /** PROFILES=name,name: only these profile workloads (default: all). */
  profileWorkloads?: Set<string>;
  /** INSTRUCTIONS=1: count each proxy's instructions per transaction under callgrind instead of measuring throughput. */
  instructions: boolean;
  /** Keep the temporary servers' directories (logs, configs) after the run. */
  keep: boolean;
  /**
   * BASELINE=<git ref>: also build that revision of tokengate (in a temporary git worktree) and run
   * it as the row `tokengate-baseline` next to `tokengate`, in the same rounds.
   */
  baseline?: string;
  pgbenchScale: number;
  sysbenchTableSize: number;
}

const truthy = (v: string | undefined): boolean => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';

function positiveInt(v: string | undefined, name: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}=${v}: expected a whole number of at least 1`);
  return n;
}

export function parseOptions(env: NodeJS.ProcessEnv = process.env): BenchOptions {
  const quick = truthy(env.QUICK);
  const scenarios = new Set<ScenarioNumber>();
  const wanted = (env.SCENARIOS ?? '').split(/[\s,]+/).filter(Boolean);
  for (const s of wanted) {
    if (!(ALL_SCENARIOS as readonly string[]).includes(s)) {
      throw new Error(`SCENARIOS=${env.SCENARIOS}: "${s}" is not a scenario; use numbers from ${ALL_SCENARIOS.join(',')} (e.g. SCENARIOS=1,3)`);
    }
    scenarios.add(s as ScenarioNumber);
  }
  const rounds = positiveInt(env.ROUNDS, 'ROUNDS') ?? (quick ? 1 : 3);
  const seconds = positiveInt(env.DURATION, 'DURATION') ?? (quick ? 5 : 15);
  return {
    quick,
    rounds,
    seconds,
    warmupSeconds: quick ? 1 : 3,
    logins: quick ? 50 : 200,
    scenarios: scenarios.size ? scenarios : new Set(ALL_SCENARIOS),
    profile: truthy(env.PROFILE) || !!env.PROFILES,
    profileWorkloads: env.PROFILES ? new Set(env.PROFILES.split(',').map((n) => n.trim()).filter(Boolean)) : undefined,
    instructions: truthy(env.INSTRUCTIONS),
    keep: truthy(env.KEEP),
    baseline: baselineRef(env.BASELINE),
    pgbenchScale: 10,
    sysbenchTableSize: 100_000,
  };
}

/** A git ref as BASELINE may name it: no option-looking or whitespace-holding strings reach git. */
function baselineRef(v: string | undefined): string | undefined {
  const ref = v?.trim();
  if (!ref) return undefined;
  if (ref.startsWith('-') || /\s/.test(ref)) throw new Error(`BASELINE=${v}: expected a git ref or commit (e.g. BASELINE=main or BASELINE=HEAD~3)`);
  return ref;
}
