import { IdleWatch, type Watched } from '../../src/core/idleWatch';
import type { SessionState } from '../../src/core/relay';
import { ThrottledLog, type TroubleLevel } from '../../src/throttledLog';
import { ManualClock } from '../helpers/manualClock';

/** The timers behind the limits, on a manual clock: the idle watch and the throttle of the trouble log. */

class FakeRelay implements Watched {
  state: SessionState = 'idle';
  bytesFromClient = 0;
  bytesToClient = 0;
}

describe('IdleWatch', () => {
  const watch = (limits: { idleMs?: number; idleInTransactionMs?: number }) => {
    const clock = new ManualClock(0);
    const relay = new FakeRelay();
    const ended: string[] = [];
    const w = new IdleWatch(clock, relay, limits, (state, ms) => ended.push(`${state} ${ms}`));
    w.start();
    return { clock, relay, ended, w };
  };

  test('ends a session quiet outside a transaction after the idle timeout, at most a tenth late', () => {
    const { clock, relay, ended } = watch({ idleMs: 1000 });
    clock.advance(900);
    relay.bytesFromClient += 10; // a statement
    relay.bytesToClient += 20;
    clock.advance(1000);
    expect(ended).toEqual([]);
    clock.advance(100);
    expect(ended).toEqual(['idle 1000']);
    clock.advance(5000);
    expect(ended).toHaveLength(1);
  });

  test('a running statement is never idle; a transaction uses its own timeout, and none means none', () => {
    const { clock, relay, ended } = watch({ idleInTransactionMs: 2000 });
    relay.state = 'active';
    clock.advance(10_000);
    relay.state = 'idle';
    clock.advance(10_000);
    expect(ended).toEqual([]); // no idleTimeout configured
    relay.state = 'transaction';
    clock.advance(2000);
    expect(ended).toEqual([]);
    clock.advance(200);
    expect(ended).toEqual(['transaction 2000']);
  });

  test('stop() ends the watch; without a timeout it schedules nothing', () => {
    const a = watch({ idleMs: 1000 });
    a.w.stop();
    a.clock.advance(5000);
    expect(a.ended).toEqual([]);
    const b = watch({});
    b.clock.advance(1e9);
    expect(b.ended).toEqual([]);
  });
});

describe('ThrottledLog', () => {
  test('one line per key per window, then the count of the repeats it left out', () => {
    let now = 0;
    const lines: string[] = [];
    const t = new ThrottledLog(60_000, () => now, (level: TroubleLevel, m: string) => lines.push(`${level} ${m}`));
    expect(t.report('error', 'up:a', 'upstream a refused the login')).toBe(true);
    now = 1000;
    expect(t.report('error', 'up:a', 'upstream a refused the login')).toBe(false);
    t.report('error', 'up:a', 'upstream a refused the login');
    t.report('warn', 'up:b', 'upstream b unreachable');
    now = 61_000;
    t.report('error', 'up:a', 'upstream a refused the login');
    expect(lines).toEqual([
      'error upstream a refused the login',
      'warn upstream b unreachable',
      'error upstream a refused the login (repeated 2 more times in the last 61s)',
    ]);
  });
});
