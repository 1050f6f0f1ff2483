/**
 * Waiting in tests without fixed sleeps: poll a condition until it holds or a deadline passes.
 * Use it where no event announces the state (a row in the upstream's process list, a flag a
 * socket handler sets); where an event exists, await the event instead.
 */

export interface WaitForOptions {
  /** What is awaited, for the failure message ("the upstream running SELECT SLEEP(10)"). */
  what: string;
  /** Default 5000 ms. The machine is shared: deadlines are generous, polls are short. */
  timeoutMs?: number;
  /** Default 20 ms. */
  intervalMs?: number;
  /** More context for the failure message (the output so far, the rows last seen). */
  detail?: () => string;
}

type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Resolves with the first truthy value `probe` returns. Rejects, naming `what`, if the deadline
 * passes first; a probe that throws fails the wait at once (a broken probe is not "not yet").
 */
export async function waitFor<T>(probe: () => T | Promise<T>, o: WaitForOptions): Promise<Truthy<Awaited<T>>> {
  const timeoutMs = o.timeoutMs ?? 5000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as Truthy<Awaited<T>>;
    if (Date.now() >= deadline) {
      const detail = o.detail ? `\n${o.detail()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${o.what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 20));
  }
}
