import { Pool, PoolExhaustedError, type PoolLimits, type UpstreamConnection } from '../../src/core/pool';
import { ManualClock } from '../helpers/manualClock';

/** The generic pool's timing rules, on a manual clock: no sleeps, no database. */

class FakeConnection implements UpstreamConnection {
  static opened = 0;
  readonly n = ++FakeConnection.opened;
  broken = false;
  attached = true;
  closed = false;
  close(): void {
    this.closed = true;
  }
}

function pool(clock: ManualClock, limits: Partial<PoolLimits> = {}) {
  return new Pool<FakeConnection>('up/role/db', {
    maxConnections: 2, idleTimeoutMs: 60_000, maxLifetimeMs: 3_600_000, acquireTimeoutMs: 1000, janitorIntervalMs: 1000, ...limits,
  }, { create: async () => new FakeConnection(), reset: async () => true }, clock);
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('an idle connection is closed by the janitor once idleTimeout has passed, not before', async () => {
  const clock = new ManualClock();
  const p = pool(clock, { idleTimeoutMs: 5000 });
  const a = await p.acquire();
  p.release(a, true);
  await settle();
  expect(p.stats().idle).toBe(1);
  clock.advance(4000);
  expect(p.stats().idle).toBe(1);
  clock.advance(1000);
  expect(p.stats().total).toBe(0);
  expect(a.closed).toBe(true);
  await p.close();
});

test('a connection past maxLifetime is closed on release and skipped when found idle', async () => {
  const clock = new ManualClock();
  const p = pool(clock, { maxLifetimeMs: 10_000, idleTimeoutMs: 0, janitorIntervalMs: 3_600_000 });
  const a = await p.acquire();
  p.release(a, true);
  await settle();
  clock.advance(10_000);
  const b = await p.acquire();
  expect(b).not.toBe(a);
  expect(a.closed).toBe(true);
  clock.advance(10_000);
  p.release(b, true);
  expect(b.closed).toBe(true);
  expect(p.stats().total).toBe(0);
  await p.close();
});

test('a waiter gets PoolExhaustedError after acquireTimeout on the pool clock', async () => {
  const clock = new ManualClock();
  const p = pool(clock, { maxConnections: 1, acquireTimeoutMs: 2500 });
  const a = await p.acquire();
  const waiting = p.acquire().catch((e: unknown) => e);
  clock.advance(2499);
  expect(p.stats().waiting).toBe(1);
  clock.advance(1);
  const err = (await waiting) as PoolExhaustedError;
  expect(err).toBeInstanceOf(PoolExhaustedError);
  expect(err.waitedMs).toBe(2500);
  p.release(a, true);
  await p.close();
});

test('a connection still detached by its relay, or broken, is closed instead of reused', async () => {
  const clock = new ManualClock();
  const p = pool(clock);
  const a = await p.acquire();
  a.attached = false;
  p.release(a, true);
  expect(a.closed).toBe(true);
  const b = await p.acquire();
  b.broken = true;
  p.release(b, true);
  expect(b.closed).toBe(true);
  expect(p.stats().total).toBe(0);
  await p.close();
});
