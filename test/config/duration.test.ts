import fc from 'fast-check';
import { DurationError, formatDuration, MAX_DURATION_MS, parseDuration } from '../../src/config/duration';

describe('parseDuration', () => {
  test.each([
    ['500ms', 500], ['30s', 30_000], ['5m', 300_000], ['1h', 3_600_000], ['1d', 86_400_000],
    ['1h30m', 5_400_000], ['1.5s', 1500], [' 10s ', 10_000], ['0s', 0], ['0', 0], ['90', 90_000],
  ] as const)('%s -> %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test('a bare number means seconds', () => {
    expect(parseDuration(30)).toBe(30_000);
    expect(parseDuration(0.25)).toBe(250);
  });

  test.each(['', 'abc', '10 s', '5x', '-5s', '1h-30m', 's', '1e3s', 'ms5', '5m ago', 'x'.repeat(100)])(
    'rejects %j with an explanation', (text) => {
      expect(() => parseDuration(text)).toThrow(DurationError);
      expect(() => parseDuration(text)).toThrow(/expected a duration such as 500ms, 30s/);
    });

  test('rejects negative, non-finite and over-long durations', () => {
    expect(() => parseDuration(-1)).toThrow(DurationError);
    expect(() => parseDuration(Number.NaN)).toThrow(DurationError);
    expect(() => parseDuration(Number.POSITIVE_INFINITY)).toThrow(DurationError);
    expect(parseDuration('24d')).toBe(24 * 86_400_000);
    expect(() => parseDuration('25d')).toThrow(/too long: the maximum is 24d/);
    expect(() => parseDuration(`${MAX_DURATION_MS + 1}ms`)).toThrow(/too long/);
  });

  test('any input either parses to a bounded integer or throws DurationError', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.double(), fc.stringMatching(/^[0-9.]{0,8}(ms|s|m|h|d){0,2}$/)), (input) => {
      try {
        const ms = parseDuration(input);
        return Number.isInteger(ms) && ms >= 0 && ms <= MAX_DURATION_MS;
      } catch (err) {
        return err instanceof DurationError;
      }
    }));
  });

  test('formatDuration round-trips', () => {
    for (const text of ['500ms', '30s', '5m', '1h', '1d', '1h30m', '0s']) expect(formatDuration(parseDuration(text))).toBe(text);
  });
});
