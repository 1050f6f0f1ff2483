/**
 * fast-check parameters for the protocol properties. In the suite each property runs its
 * usual number of cases; `make fuzz` (FUZZ_SECONDS) runs every property for its share of the
 * time instead, with a seed printed first so a finding can be replayed:
 *
 *   make fuzz FUZZ_SECONDS=600                         10 minutes over all properties
 *   make fuzz-replay FUZZ_SEED=123 FUZZ_PATH="4:1:0" FUZZ_ONLY="framer: random bytes"
 *                                                      replays a reported counterexample
 *
 * FUZZ_PROPERTIES (set by the Makefile: how many properties share FUZZ_SECONDS) divides the time.
 */
import type { Parameters } from 'fast-check';

const seconds = Number(process.env.FUZZ_SECONDS ?? 0);
const properties = Math.max(1, Number(process.env.FUZZ_PROPERTIES ?? 1));
const fixedSeed = process.env.FUZZ_SEED !== undefined && process.env.FUZZ_SEED !== '' ? Number(process.env.FUZZ_SEED) : undefined;
const path = process.env.FUZZ_PATH || undefined;

/** Whether this run is `make fuzz` (time-bounded, many cases) rather than the suite. */
export const fuzzing = seconds > 0;

/** The time each property gets under `make fuzz`, in ms. */
export const fuzzBudgetMs = fuzzing ? Math.max(1000, Math.floor((seconds * 1000) / properties)) : 0;

/** A jest timeout for one property: its budget plus room to shrink a counterexample. */
export const fuzzTimeout = (suiteMs = 60_000): number => (fuzzing ? fuzzBudgetMs + 120_000 : suiteMs);

/**
 * Parameters for one property, called inside its test: the test's name is printed with the
 * seed, so a failing property's report (fast-check prints its seed and path) can be replayed.
 */
export function fuzzParams<T>(numRuns: number, extra: Parameters<T> = {}): Parameters<T> {
  if (!fuzzing && fixedSeed === undefined) return { numRuns, ...extra };
  const name = expect.getState().currentTestName ?? '?';
  const seed = fixedSeed ?? (Math.random() * 2 ** 31) | 0;
  process.stderr.write(`fuzz "${name}": seed=${seed}${path ? ` path=${path}` : ''}${fuzzing ? ` for ${fuzzBudgetMs} ms` : ''}\n`);
  if (!fuzzing) return { numRuns, seed, path, ...extra };
  return {
    ...extra,
    seed,
    path,
    numRuns: path ? numRuns : Number.MAX_SAFE_INTEGER,
    interruptAfterTimeLimit: fuzzBudgetMs,
    markInterruptAsFailure: false,
  };
}
