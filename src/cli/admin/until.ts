import { DurationError, parseDuration } from '../../config/duration';
import { AdminUsageError } from './errors';

export const UNTIL_HELP = 'block every matching token until TIME: an ISO time (2026-12-05T18:00:00Z) or a duration from now (30m, 2h, 1d12h; at most 24d)';

/** `--until`: an ISO time, or a duration counted from `now`; the result is an ISO time in the future. */
export function parseUntil(text: string, now: number): string {
  const trimmed = text.trim();
  let at: number;
  if (/^\d{4}-\d{2}-\d{2}/.test(trimmed)) {
    // An ISO date (with an optional time): Date.parse takes other forms too, where "05/12" could mean two days.
    at = Date.parse(trimmed);
    if (Number.isNaN(at)) throw new AdminUsageError(`--until ${JSON.stringify(text)} is not a valid ISO time (e.g. 2026-12-05T18:00:00Z)`);
  } else {
    try {
      at = now + parseDuration(trimmed);
    } catch (err) {
      if (!(err instanceof DurationError)) throw err;
      throw new AdminUsageError(`--until ${JSON.stringify(text)} is neither an ISO time (2026-12-05T18:00:00Z) nor a duration from now (30m, 2h, 1d12h; at most 24d, give a later time as an ISO time)`);
    }
  }
  if (at <= now) throw new AdminUsageError(`--until ${JSON.stringify(text)} is not in the future`);
  return new Date(at).toISOString();
}
