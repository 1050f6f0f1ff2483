import type { NewRevocation, RevocationTarget } from '../core/state/revocations';

/** The body of POST /revocations, checked: exactly one target, a bounded reason, an `until` in the future. */

export const MAX_REASON_CHARS = 500;
const MAX_TARGET_CHARS = 256;
const TARGET_KEYS = ['sub', 'client', 'jti'] as const;
const KEYS = new Set<string>([...TARGET_KEYS, 'reason', 'until']);
/** A full ISO 8601 date-time with a zone: a time without one would be read in the server's zone. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i;
const CONTROL = /[\u0000-\u001f\u007f]/;

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const bad = (error: string): { ok: false; error: string } => ({ ok: false, error });

export function parseRevocationRequest(body: unknown, now: number): Parsed<Omit<NewRevocation, 'by'>> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return bad('expected a JSON object such as {"sub": "svc-reporting", "reason": "leaked token"}');
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => !KEYS.has(k));
  if (unknown.length) return bad(`unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')}; expected one of sub, client, jti, and optionally reason and until`);
  const given = TARGET_KEYS.filter((k) => fields[k] !== undefined);
  if (given.length !== 1) {
    return bad(given.length === 0 ? 'name what to revoke: exactly one of "sub", "client" or "jti"' : `give exactly one of "sub", "client" or "jti", not ${given.join(' and ')}`);
  }
  const key = given[0];
  const value = fields[key];
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_TARGET_CHARS || CONTROL.test(value)) {
    return bad(`"${key}" must be a non-empty string of at most ${MAX_TARGET_CHARS} characters without control characters`);
  }
  const reason = fields.reason;
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_REASON_CHARS || CONTROL.test(reason))) {
    return bad(`"reason" must be a string of at most ${MAX_REASON_CHARS} characters without control characters (it is shown to the agent)`);
  }
  let until: number | undefined;
  if (fields.until !== undefined) {
    const text = fields.until;
    until = typeof text === 'string' && ISO_TIME.test(text) ? Date.parse(text) : NaN;
    if (Number.isNaN(until)) return bad('"until" must be an ISO 8601 time with a zone, such as 2026-12-04T18:00:00Z');
    if (until <= now) return bad(`"until" (${text}) is not in the future; the gateway's time is ${new Date(now).toISOString()}`);
  }
  const target = { [key]: value } as RevocationTarget;
  return { ok: true, value: { target, reason: reason === undefined || reason === '' ? undefined : reason, until } };
}

/** "sub=svc-reporting": a target for messages and audit actions. */
export function describeTarget(t: RevocationTarget): string {
  const [key, value] = Object.entries(t)[0] as [string, string];
  return `${key}=${value}`;
}
