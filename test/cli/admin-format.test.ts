/** The admin CLI's human formats and --until, in-process. */
import { humanBytes, humanDuration, relative, table } from '../../src/cli/admin/format';
import { parseUntil } from '../../src/cli/admin/until';
import { AdminUsageError } from '../../src/cli/admin/errors';

test('durations show their two largest units', () => {
  expect([0, 999, 45_000, 192_000, 3_600_000, 7_500_000, 3_725_000, 90_061_000, 172_800_000].map(humanDuration))
    .toEqual(['0s', '0s', '45s', '3m12s', '1h', '2h5m', '1h2m', '1d1h', '2d']);
});

test('times relative to now; bytes', () => {
  const now = Date.parse('2026-12-04T12:00:00Z');
  expect(relative('2026-12-04T11:55:00Z', now)).toBe('5m ago');
  expect(relative('2026-12-04T14:30:00Z', now)).toBe('in 2h30m');
  expect(relative(null, now)).toBe('-');
  expect(relative('not a time', now)).toBe('-');
  expect([0, 1023, 1536, 3 * 1024 * 1024, 50 * 1024 ** 3].map(humanBytes)).toEqual(['0B', '1023B', '1.5KiB', '3.0MiB', '50GiB']);
});

test('tables align every column to its widest cell', () => {
  expect(table(['ID', 'NAME', 'X'], [['1', 'a', 'x'], ['200', 'longer', 'y']])).toBe('ID   NAME    X\n1    a       x\n200  longer  y\n');
});

test('--until takes an ISO time or a duration from now, in the future', () => {
  const now = Date.parse('2026-12-04T12:00:00Z');
  expect(parseUntil('2h', now)).toBe('2026-12-04T14:00:00.000Z');
  expect(parseUntil('1d12h', now)).toBe('2026-12-06T00:00:00.000Z');
  expect(parseUntil('2026-12-05T18:00:00Z', now)).toBe('2026-12-05T18:00:00.000Z');
  expect(parseUntil('2026-12-05', now)).toBe('2026-12-05T00:00:00.000Z');
  for (const bad of ['tomorrow', '05/12/2026', '2026-13-45', '0s', '2026-12-01T00:00:00Z', '30d']) {
    expect(() => parseUntil(bad, now)).toThrow(AdminUsageError);
  }
});
