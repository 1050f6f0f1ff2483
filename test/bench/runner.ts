/**
 * Runs scenarios interleaved (A B C, A B C, ...): a shared 2-core machine drifts, and
 * interleaving spreads the drift over every system instead of penalising whichever ran last.
 */
import { connectTimes } from './connectLatency';
import { run } from './proc';
import { load1, processCpu } from './machine';
import type { BenchOptions } from './options';
import type { LatencyResult, SystemResult, ThroughputResult } from './report';
import type { LatencySpec, ThroughputSpec } from './scenarios';

export type Log = (line: string) => void;

export async function runThroughput(spec: ThroughputSpec, o: BenchOptions, log: Log): Promise<ThroughputResult> {
  const systems: SystemResult[] = spec.systems.map((s) => ({ id: s.id, label: s.label, samples: [] }));
  const result: ThroughputResult = { id: spec.id, title: spec.title, command: spec.command, systems, skipped: spec.skipped, notes: [...spec.notes] };
  if (spec.skipped) {
    log(`scenario ${spec.id} (${spec.title}): skipped: ${spec.skipped}`);
    return result;
  }
  // Unrecorded warm-up: JIT, pools and caches reach steady state before the first measured round.
  for (let i = 0; i < spec.systems.length; i++) {
    log(`scenario ${spec.id} (${spec.title}) warm-up ${o.warmupSeconds}s: ${spec.systems[i].label}`);
    await spec.systems[i].run(o.warmupSeconds).then(
      (r) => r.note && result.notes.push(`${spec.systems[i].label}, warm-up: ${r.note}`),
      (err: Error) => (systems[i].failure = err.message),
    );
  }
  for (let round = 1; round <= o.rounds; round++) {
    for (const i of roundOrder(spec, round)) {
      const s = spec.systems[i];
      if (systems[i].failure) continue;
      await flushDirtyPages();
      const load = load1();
      log(`scenario ${spec.id} (${spec.title}) round ${round}/${o.rounds}: ${s.label} (load ${load.toFixed(2)})`);
      const pids = s.pids?.() ?? (s.pid ? [s.pid] : []);
      const cpuBefore = pids.length ? cpuOf(pids) : undefined;
      const perProcessBefore = pids.length > 1 ? pids.map(processCpu) : undefined;
      try {
        const r = await s.run(o.seconds);
        const cpuAfter = cpuBefore && r.transactions > 0 ? cpuOf(pids) : undefined;
        const perTx = (after: number | undefined, before: number | undefined): number | undefined =>
          after !== undefined && before !== undefined ? (after - before) / r.transactions : undefined;
        const cpuUsPerTx = perTx(cpuAfter && cpuAfter.user + cpuAfter.system, cpuBefore && cpuBefore.user + cpuBefore.system);
        const kernelUsPerTx = perTx(cpuAfter?.system, cpuBefore?.system);
        systems[i].samples.push({ round, tps: r.tps, transactions: r.transactions, errors: r.errors, cpuUsPerTx, kernelUsPerTx, load1: load });
        if (r.note) result.notes.push(`${s.label}, round ${round}: ${r.note}`);
        log(`  ${r.tps.toFixed(0)} tps${cpuUsPerTx !== undefined ? `, ${cpuUsPerTx.toFixed(0)} µs CPU/tx in the proxy (${kernelUsPerTx!.toFixed(0)} in the kernel)` : ''}`);
        if (pids.length > 1 && perProcessBefore && r.transactions > 0) {
          const each = pids.map((pid, k) => {
            const a = processCpu(pid);
            const b = perProcessBefore[k]!;
            return `pid ${pid}: ${((a.user + a.system - b.user - b.system) / r.transactions).toFixed(0)}`;
          });
          log(`    µs CPU/tx per process (the first is the supervisor): ${each.join(', ')}`);
        }
      } catch (err) {
        systems[i].failure = (err as Error).message;
        log(`  failed: ${systems[i].failure}`);
      }
    }
  }
  return result;
}

/**
 * Writes the page cache's dirty pages out before a measured run. A run that writes much (the
 * audit.queries row writes its SQL text, PostgreSQL runs with fsync off) would otherwise leave the
 * kernel's writeback to the next system's run, which then pays for it.
 */
async function flushDirtyPages(): Promise<void> {
  await run('sync', [], { timeoutMs: 120_000 });
}

/** The CPU time of these processes together (a supervisor and its workers). */
function cpuOf(pids: number[]): { user: number; system: number } {
  return pids.map(processCpu).reduce((a, b) => ({ user: a.user + b.user, system: a.system + b.system }));
}

/** The systems' indices in the order round `round` runs them: as listed, with spec.alternate's pair swapped in even rounds. */
export function roundOrder(spec: { systems: ReadonlyArray<{ id: string }>; alternate?: [string, string] }, round: number): number[] {
  const order = spec.systems.map((_, i) => i);
  if (spec.alternate && round % 2 === 0) {
    const a = spec.systems.findIndex((s) => s.id === spec.alternate![0]);
    const b = spec.systems.findIndex((s) => s.id === spec.alternate![1]);
    if (a >= 0 && b >= 0) [order[a], order[b]] = [order[b], order[a]];
  }
  return order;
}

export async function runLatency(specs: LatencySpec[], o: BenchOptions, log: Log): Promise<LatencyResult[]> {
  const results: LatencyResult[] = specs.map((s) => ({ protocol: s.protocol, id: s.id, label: s.label, samplesMs: [] }));
  for (let i = 0; i < specs.length; i++) {
    await connectTimes(specs[i].target, 5).catch((err: Error) => (results[i].failure = err.message));
  }
  for (let round = 1; round <= o.rounds; round++) {
    for (let i = 0; i < specs.length; i++) {
      if (results[i].failure) continue;
      log(`scenario 7 (login latency) round ${round}/${o.rounds}: ${specs[i].protocol} ${specs[i].label}, ${o.logins} logins`);
      try {
        results[i].samplesMs.push(...(await connectTimes(specs[i].target, o.logins)));
      } catch (err) {
        results[i].failure = (err as Error).message;
      }
    }
  }
  return results;
}
