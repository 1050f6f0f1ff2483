import fc from 'fast-check';
import { isoNow } from '../../src/audit/timestamp';

describe('isoNow', () => {
  it('is new Date(t).toISOString() for any sequence of clock readings (same millisecond, same second, forward, backward)', () => {
    const year9999 = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
    const reading = fc.oneof(
      fc.integer({ min: 0, max: year9999 }),
      // Near one another, so that the per-millisecond and per-second reuse is exercised.
      fc.integer({ min: 1_780_000_000_000, max: 1_780_000_003_000 }),
    );
    fc.assert(
      fc.property(fc.array(reading, { minLength: 1, maxLength: 30 }), (times) => {
        for (const t of times) expect(isoNow(t)).toBe(new Date(t).toISOString());
      }),
      { numRuns: 500 },
    );
    for (const t of [0, 1, 9, 10, 99, 100, 999, 1000, 1001, 59_999, 60_000, year9999]) expect(isoNow(t)).toBe(new Date(t).toISOString());
  });

  it('reads the clock when given no time', () => {
    expect(Math.abs(Date.parse(isoNow()) - Date.now())).toBeLessThan(60_000);
  });
});
