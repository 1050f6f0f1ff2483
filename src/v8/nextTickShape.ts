import { createHook } from 'node:async_hooks';

/**
 * Keeps `process.nextTick` on V8's fast path for the life of the process.
 *
 * Node runs a `nextTick` for every chunk a stream reads (`maybeReadMore`) and for every write that
 * completes at once (`afterWriteTick`), so a relay calls it twice per message. `nextTick` builds
 * its queue entry with an object literal whose first keys are computed (the async-id symbols).
 * V8 records one object shape (map) as feedback for those keys, and a shape mismatch sends the
 * feedback straight to megamorphic, for good. Nothing but short-lived queue entries holds that
 * shape, so when the process goes quiet and a few full GCs run (as V8's memory reducer does after
 * a busy spell) the shape is collected; the next entry gets a fresh one, the feedback goes
 * megamorphic, and from then on every `nextTick` defines its properties through the runtime,
 * 3-5 times slower (140 ns per call before such a quiet spell, 420-600 ns after). Holding one
 * real queue entry keeps the shape, and so the feedback, alive. Justified by `make bench`'s
 * select-only and TPC-B rows after an idle spell (docs/performance-history.md has the dumps).
 *
 * The entry is caught through an async_hooks `init` hook, enabled only around one `nextTick`.
 */
let retained: object | undefined;

const noop = (): void => undefined;

/** Retains one `nextTick` queue entry (idempotent) and returns it, or undefined if Node made none. */
export function keepNextTickShape(): object | undefined {
  if (retained !== undefined) return retained;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject' && retained === undefined) retained = resource;
    },
  });
  hook.enable();
  try {
    // Two arguments: the shape a stream's maybeReadMore and afterWriteTick entries have.
    process.nextTick(noop, undefined);
  } finally {
    hook.disable();
  }
  return retained;
}
