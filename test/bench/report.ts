/** Medians, percentiles, ratios against targets, and the markdown the harness prints. */

export interface RunSample {
  round: number;
  tps: number;
  transactions: number;
  errors: number;
  /** CPU of the proxy process (tokengate or pgbouncer) per transaction; undefined for direct. */
  cpuUsPerTx?: number;
  /** The part of cpuUsPerTx spent in the kernel (system time: socket calls, TCP, wake-ups). */
  kernelUsPerTx?: number;
  /** 1-minute load average when the run started. */
  load1: number;
}

export interface SystemResult {
  id: string;
  label: string;
  samples: RunSample[];
  failure?: string;
}

export interface ThroughputResult {
  id: string;
  title: string;
  command: string;
  systems: SystemResult[];
  skipped?: string;
  notes: string[];
}

export interface LatencyResult {
  protocol: 'postgres' | 'mysql';
  id: string;
  label: string;
  samplesMs: number[];
  failure?: string;
}

/** "tokengate ≥ 0.85 × pgbouncer" for one scenario. */
export interface Target {
  scenario: string;
  description: string;
  numerator: string;
  denominator: string;
  minimum: number;
  /**
   * The two rows run back to back (in alternating order), so the figure is the median of the
   * rounds' ratios: a slow drift of the machine cancels within each round.
   */
  paired?: boolean;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function medianTps(r: SystemResult | undefined): number {
  return r && !r.failure ? median(r.samples.map((s) => s.tps)) : NaN;
}

function medianOf(r: SystemResult, pick: (s: RunSample) => number | undefined): number {
  const xs = r.samples.map(pick).filter((x): x is number => x !== undefined);
  return xs.length ? median(xs) : NaN;
}

/** "194 (88)": median CPU µs per transaction, of which in the kernel. */
function cpuCell(r: SystemResult): string {
  const total = medianOf(r, (s) => s.cpuUsPerTx);
  const kernel = medianOf(r, (s) => s.kernelUsPerTx);
  return Number.isFinite(total) ? `${fmt(total)}${Number.isFinite(kernel) ? ` (${fmt(kernel)})` : ''}` : '—';
}

const fmt = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '—');
const ratio = (a: number, b: number): number => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);

export function evaluateTarget(t: Target, results: ThroughputResult[]): { measured: number; status: string; perRound: number[] } {
  const scenario = results.find((r) => r.id === t.scenario);
  if (!scenario || scenario.skipped) return { measured: NaN, perRound: [], status: `not run${scenario?.skipped ? ` (${scenario.skipped})` : ''}` };
  const num = scenario.systems.find((s) => s.id === t.numerator);
  const den = scenario.systems.find((s) => s.id === t.denominator);
  const medians = ratio(medianTps(num), medianTps(den));
  if (!Number.isFinite(medians)) return { measured: medians, perRound: [], status: `not measured (${num?.failure ?? den?.failure ?? 'system missing'})` };
  // Each round's systems ran back to back, so a round's ratio shows how much the machine moved.
  const perRound = (num?.samples ?? []).flatMap((a) => {
    const b = den?.samples.find((x) => x.round === a.round);
    return b ? [ratio(a.tps, b.tps)] : [];
  });
  const measured = t.paired && perRound.length ? median(perRound) : medians;
  return { measured, perRound, status: measured >= t.minimum ? '**met**' : '**not met**' };
}

function loadRange(samples: RunSample[]): string {
  if (samples.length === 0) return '—';
  const loads = samples.map((s) => s.load1);
  const lo = Math.min(...loads);
  const hi = Math.max(...loads);
  return lo === hi ? lo.toFixed(2) : `${lo.toFixed(2)}–${hi.toFixed(2)}`;
}

export function throughputTable(results: ThroughputResult[]): string {
  const lines = [
    '| # | workload | system | tps (median) | tps per round | × direct | × pgbouncer | proxy CPU µs/tx (kernel) | errors | load (1 min) |',
    '|---|---|---|---:|---|---:|---:|---:|---:|---|',
  ];
  for (const r of results) {
    if (r.skipped) {
      lines.push(`| ${r.id} | ${r.title} | *skipped: ${r.skipped}* | | | | | | | |`);
      continue;
    }
    const direct = medianTps(r.systems.find((s) => s.id.startsWith('direct')));
    const bouncerSystem = r.systems.find((s) => s.id.startsWith('pgbouncer'));
    const bouncer = medianTps(bouncerSystem);
    for (const s of r.systems) {
      if (s.failure) {
        lines.push(`| ${r.id} | ${r.title} | ${s.label} | failed | ${s.failure.replace(/\|/g, '\\|').replace(/\n/g, ' ')} | | | | | |`);
        continue;
      }
      const tps = medianTps(s);
      const isProxyUnderTest = !s.id.startsWith('direct') && !s.id.startsWith('pgbouncer');
      const errors = s.samples.reduce((n, x) => n + x.errors, 0);
      lines.push(`| ${r.id} | ${r.title} | ${s.label} | ${fmt(tps)} | ${s.samples.map((x) => fmt(x.tps)).join(' / ')} | ` +
        `${isProxyUnderTest ? fmt(ratio(tps, direct), 2) : ''} | ${isProxyUnderTest && bouncerSystem ? fmt(ratio(tps, bouncer), 2) : ''} | ${cpuCell(s)} | ${errors} | ${loadRange(s.samples)} |`);
    }
  }
  return lines.join('\n');
}

/** What each scenario ran, for the reader who wants to reproduce one row by hand. */
export function workloadList(results: ThroughputResult[]): string {
  return results.map((r) => `- ${r.id} ${r.title}: \`${r.command}\``).join('\n');
}

export function targetTable(targets: Target[], results: ThroughputResult[]): string {
  const lines = ['| scenario | target | measured | per round | required | status |', '|---|---|---:|---|---:|---|'];
  for (const t of targets) {
    const { measured, status, perRound } = evaluateTarget(t, results);
    // Two decimals, unless rounding would make the value look like it meets a target it misses (0.8496).
    const rounded = Math.round(measured * 100) / 100;
    const digits = (rounded >= t.minimum) !== (measured >= t.minimum) ? 4 : 2;
    lines.push(`| ${t.scenario} | ${t.description} | ${fmt(measured, digits)} | ${perRound.map((x) => fmt(x, 2)).join(' / ')} | ≥ ${t.minimum} | ${status} |`);
  }
  return lines.join('\n');
}

export function latencyTable(results: LatencyResult[]): string {
  const lines = ['| protocol | system | logins | p50 ms | p99 ms | p50 × direct |', '|---|---|---:|---:|---:|---:|'];
  for (const r of results) {
    if (r.failure) {
      lines.push(`| ${r.protocol} | ${r.label} | failed: ${r.failure.replace(/\|/g, '\\|')} | | | |`);
      continue;
    }
    const direct = results.find((d) => d.protocol === r.protocol && d.id.startsWith('direct') && !d.failure);
    const p50 = percentile(r.samplesMs, 50);
    const rel = direct && direct !== r ? fmt(ratio(p50, percentile(direct.samplesMs, 50)), 2) : '';
    lines.push(`| ${r.protocol} | ${r.label} | ${r.samplesMs.length} | ${fmt(p50, 2)} | ${fmt(percentile(r.samplesMs, 99), 2)} | ${rel} |`);
  }
  return lines.join('\n');
}

/**
 * tokengate against another build of itself (BASELINE=<ref>), scenario by scenario. The two ran
 * back to back in every round, so each round's ratio compares them under the same machine load;
 * the figure is the median of those ratios.
 */
export function baselineTable(results: ThroughputResult[], baselineId: string): string {
  const lines = [
    '| # | workload | tokengate tps | baseline tps | tps: tokengate / baseline | per round | CPU µs/tx: tokengate / baseline | per round |',
    '|---|---|---:|---:|---:|---|---:|---|',
  ];
  for (const r of results) {
    const a = r.systems.find((s) => s.id === 'tokengate');
    const b = r.systems.find((s) => s.id === baselineId);
    if (!a || !b) continue;
    if (a.failure || b.failure) {
      lines.push(`| ${r.id} | ${r.title} | ${a.failure ? 'failed' : fmt(medianTps(a))} | ${b.failure ? 'failed' : fmt(medianTps(b))} | | | | |`);
      continue;
    }
    const paired = (pick: (s: RunSample) => number | undefined): number[] => a.samples.flatMap((x) => {
      const y = b.samples.find((s) => s.round === x.round);
      const [p, q] = [pick(x), y && pick(y)];
      return p !== undefined && q !== undefined ? [ratio(p, q)] : [];
    });
    const tps = paired((s) => s.tps);
    const cpu = paired((s) => s.cpuUsPerTx);
    const list = (xs: number[]): string => xs.map((x) => fmt(x, 3)).join(' / ');
    lines.push(`| ${r.id} | ${r.title} | ${fmt(medianTps(a))} | ${fmt(medianTps(b))} | ${fmt(median(tps), 3)} | ${list(tps)} | ${fmt(median(cpu), 3)} | ${list(cpu)} |`);
  }
  return lines.join('\n');
}
