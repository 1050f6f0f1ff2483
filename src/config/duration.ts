/**
 * Durations in the config: "500ms", "30s", "5m", "1h", "1d", combinations such as
 * "1h30m", or a bare number meaning seconds. The result is milliseconds.
 */

/**
 * Node's timers fire immediately (with only a warning) for delays above 2^31-1 ms
 * (about 24.8 days), so every duration is capped there rather than silently misbehaving.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (v === null || v === undefined) return 'an empty value';
  return typeof v === 'object' ? (Array.isArray(v) ? 'a list' : 'a mapping') : String(v);
}

const EXPECTED = 'expected a duration such as 500ms, 30s, 5m, 1h, 1d or 1h30m (a bare number means seconds)';
/** One "<number><unit>" part; the whole string must be a sequence of these. */
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
/** The text forms accepted below, for the schema (and so for editors checking as you type). */
export const DURATION_TEXT = /^\s*(?:\d+(?:\.\d+)?|(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+)\s*$/;
/** The message for a value that is not a duration; parseDuration's own messages start the same way. */
export function notADuration(v: unknown): string {
  return `${EXPECTED}, got ${describe(v)}`;
}
/** Longer inputs cannot be a sensible duration; refusing them keeps the scan bounded. */
const MAX_TEXT_LENGTH = 64;

export class DurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DurationError';
  }
}

function checked(ms: number, original: unknown): number {
  if (!Number.isFinite(ms) || ms < 0) throw new DurationError(`${EXPECTED}, got ${describe(original)}`);
  if (ms > MAX_DURATION_MS) {
    throw new DurationError(`duration ${describe(original)} is too long: the maximum is 24d (2^31-1 ms, the limit of Node timers)`);
  }
  return Math.round(ms);
}

/** Parses a duration to milliseconds; throws DurationError with an explanation. */
export function parseDuration(v: string | number): number {
  if (typeof v === 'number') return checked(v * 1000, v);
  if (typeof v !== 'string') throw new DurationError(`${EXPECTED}, got ${describe(v)}`);
  const text = v.trim();
  if (text === '' || text.length > MAX_TEXT_LENGTH) throw new DurationError(`${EXPECTED}, got ${describe(v)}`);
  if (/^\d+(\.\d+)?$/.test(text)) return checked(Number(text) * 1000, v);

  let total = 0;
  PART.lastIndex = 0;
  let consumed = 0;
  for (let m = PART.exec(text); m !== null; m = PART.exec(text)) {
    total += Number(m[1]) * UNIT_MS[m[2]];
    consumed = PART.lastIndex;
  }
  if (consumed !== text.length) throw new DurationError(`${EXPECTED}, got ${describe(v)}`);
  return checked(total, v);
}

/** Formats milliseconds back into the shortest readable form ("90s" -> "1m30s"), for reports. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const parts: string[] = [];
  let rest = ms;
  for (const unit of ['d', 'h', 'm', 's', 'ms'] as const) {
    const size = UNIT_MS[unit];
    const n = Math.floor(rest / size);
    if (n > 0) {
      parts.push(`${n}${unit}`);
      rest -= n * size;
    }
  }
  return parts.join('');
}
