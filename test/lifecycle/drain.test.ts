import type { EndReason, LiveSession, SessionInfo } from '../../src/core/sessionRegistry';
import { SessionRegistry } from '../../src/core/sessionRegistry';
import { CANCEL_WAIT_MS } from '../../src/core/sessionLimits';
import { drainSessions, SHUTDOWN_MESSAGE } from '../../src/core/shutdown';
import { ManualClock } from '../helpers/manualClock';

/** The drain on the injectable clock: sessions end as they come to rest; the grace ends the rest; a second signal ends all at once. */

class FakeSession implements LiveSession {
  readonly protocol = 'postgres' as const;
  ended?: { reason: EndReason; message: string };
  constructor(readonly id: string, public state: SessionInfo['state'], private readonly registry: SessionRegistry) {
    registry.add(this);
  }
  info(): SessionInfo {
    return { id: this.id, protocol: 'postgres', remote: '127.0.0.1:1', startedAt: 0, state: this.state, queries: 0, bytesFromClient: 0, bytesToClient: 0 };
  }
  end(reason: EndReason, message: string): void {
    this.ended = { reason, message };
    this.registry.remove(this, reason);
  }
  endIfIdle(reason: EndReason, message: string): boolean {
    if (this.state !== 'idle' && this.state !== 'handshake') return false;
    this.end(reason, message);
    return true;
  }
  admitted(): undefined {
    return undefined;
  }
  cancelQuery(): Promise<void> {
    return Promise.resolve();
  }
}

test('idle sessions end at once; a transaction ends when it is over; the drain is done when the last one ends', async () => {
  const clock = new ManualClock();
  const registry = new SessionRegistry();
  const idle = new FakeSession('a', 'idle', registry);
  const tx = new FakeSession('b', 'transaction', registry);
  const drain = drainSessions(registry, clock, 30_000);
  let done = false;
  void drain.done.then(() => (done = true));
  expect(idle.ended).toEqual({ reason: 'shutdown', message: SHUTDOWN_MESSAGE });
  expect(tx.ended).toBeUndefined();
  clock.advance(5_000);
  expect(tx.ended).toBeUndefined();
  tx.state = 'idle'; // COMMIT came back
  clock.advance(100);
  expect(tx.ended?.reason).toBe('shutdown');
  await drain.done;
  expect(done).toBe(true);
  expect(clock.pending).toBe(0);
});

test('when the grace is over, the sessions still busy are ended', async () => {
  const clock = new ManualClock();
  const registry = new SessionRegistry();
  const running = new FakeSession('a', 'active', registry);
  const inTx = new FakeSession('b', 'transaction', registry);
  const drain = drainSessions(registry, clock, 30_000);
  clock.advance(29_900);
  expect(running.ended).toBeUndefined();
  clock.advance(100);
  await drain.done;
  expect(running.ended?.reason).toBe('shutdown');
  expect(inTx.ended?.reason).toBe('shutdown');
});

test('the drain waits for ended sessions to unregister (cancelling their statements), at most CANCEL_WAIT_MS and a second', async () => {
  const clock = new ManualClock();
  const registry = new SessionRegistry();
  const running = new FakeSession('a', 'active', registry);
  // Ends, but stays registered: its statement is being cancelled upstream and the server has not answered.
  running.end = (reason, message) => {
    running.ended = { reason, message };
  };
  const drain = drainSessions(registry, clock, 1_000);
  let done = false;
  void drain.done.then(() => (done = true));
  clock.advance(1_000);
  expect(running.ended?.reason).toBe('shutdown');
  clock.advance(CANCEL_WAIT_MS + 999);
  await Promise.resolve();
  expect(done).toBe(false);
  clock.advance(1);
  await drain.done;
});

test('now() (a second signal) ends every session without waiting for the grace', async () => {
  const clock = new ManualClock();
  const registry = new SessionRegistry();
  const busy = new FakeSession('a', 'transaction', registry);
  const drain = drainSessions(registry, clock, 30_000);
  drain.now();
  expect(busy.ended?.reason).toBe('shutdown');
  await drain.done;
  expect(clock.pending).toBe(0);
});

test('with no session the drain is done at once', async () => {
  const clock = new ManualClock();
  await drainSessions(new SessionRegistry(), clock, 30_000).done;
  expect(clock.pending).toBe(0);
});
