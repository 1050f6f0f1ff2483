import fastJson from 'fast-json-stringify';
import type { Protocol } from '../config/schema';
import type { AdminRequest, AuditEvent, ConnectionAccepted, ConnectionRejected, IdentityFields, QueryRecord, SessionEnd } from './events';

/**
 * Audit records as JSON lines (docs/audit.md): `timestamp`, `level`, `message` and `event`
 * first, then the event type's own fields in a fixed order, then the identity fields. Each
 * type is serialized by a fast-json-stringify function compiled from the field lists below, so
 * only the fields listed here can ever appear in a line (whatever else an event object carries),
 * undefined fields are left out, and strings are escaped as JSON requires.
 */

type FieldSchema =
  | { readonly type: 'string' }
  | { readonly type: 'boolean' }
  | { readonly type: 'number' }
  | { readonly type: 'integer' }
  | { readonly type: 'array'; readonly items: { readonly type: 'string' } };

const text = { type: 'string' } as const;
const flag = { type: 'boolean' } as const;
const number = { type: 'number' } as const;
const count = { type: 'integer' } as const;
const texts = { type: 'array', items: text } as const;

/** An event type's own fields (all but `event`, `message` and the identity fields), each with its JSON type. */
type OwnFields<E> = { readonly [K in Exclude<keyof E, 'event' | 'message' | keyof IdentityFields>]-?: FieldSchema };

/** A session's fields, first after `event` in the records of a session. */
const SESSION = { sessionId: text, protocol: text } as const;

/** What a query record adds to the session fields: the statement and its outcome. */
const QUERY_OUTCOME = { sql: text, truncated: flag, durationMs: number, tag: text, sqlState: text, error: text } as const;

/** Last in every record. */
const IDENTITY: { readonly [K in keyof IdentityFields]-?: FieldSchema } = { sub: text, cid: text, groups: texts, jti: text, tokenExpiresAt: text };

/** The fields of each event type, in the order they are written (the order of these literals). */
const OWN_FIELDS: { readonly [E in AuditEvent as E['event']]: OwnFields<E> } = {
  connection_accepted: {
    ...SESSION, remote: text, via: text, tls: flag, grant: text, upstream: text, role: text, database: text, upstreamDatabase: text, applicationName: text,
  } satisfies OwnFields<ConnectionAccepted>,
  connection_rejected: { ...SESSION, remote: text, via: text, tls: flag, reason: text, role: text, database: text } satisfies OwnFields<ConnectionRejected>,
  query: { ...SESSION, ...QUERY_OUTCOME } satisfies OwnFields<QueryRecord>,
  session_end: {
    ...SESSION, remote: text, durationMs: number, bytesFromClient: count, bytesToClient: count, queries: count, reason: text, upstreamReused: flag, endedBy: text,
  } satisfies OwnFields<SessionEnd>,
  admin_request: { method: text, path: text, remote: text, status: count, caller: text, action: text, error: text } satisfies OwnFields<AdminRequest>,
};

/** The keys of each event type's line, in order: for the documentation's tests and the fallback. */
export const RECORD_KEYS: { readonly [E in AuditEvent['event']]: readonly string[] } = Object.fromEntries(
  Object.entries(OWN_FIELDS).map(([name, own]) => [name, ['timestamp', 'level', 'message', 'event', ...Object.keys(own), ...Object.keys(IDENTITY)]]),
) as { [E in AuditEvent['event']]: string[] };

type Serializer = (value: object) => string;
const compile = (properties: Readonly<Record<string, FieldSchema>>): Serializer => fastJson({ type: 'object', properties }) as Serializer;
const jsonString = fastJson({ type: 'string' }) as (value: string) => string;

/** Per event type: the line's fixed part after the timestamp (no message of its own) and the body's serializer. */
const FORMATS = new Map<string, { head: string; body: Serializer }>(
  Object.entries(OWN_FIELDS).map(([name, own]) => [name, { head: headOf(name, jsonString(name)), body: compile({ ...own, ...IDENTITY }) }]),
);

/** `","level":"info","message":…,"event":"…"`: what follows the timestamp's value. */
function headOf(event: string, messageJson: string): string {
  return `","level":"info","message":${messageJson},"event":${jsonString(event)}`;
}

/** `{"a":1,"b":2}` → `,"a":1,"b":2}`; `{}` → `}`: an object's members, to follow other members. */
function membersAfter(json: string): string {
  return json.length > 2 ? ',' + json.slice(1) : '}';
}

/** One audit record as a JSON line (without the line break), stamped `timestamp` (ISO 8601, UTC). */
export function formatRecord(event: AuditEvent, timestamp: string): string {
  const format = FORMATS.get(event.event);
  if (format === undefined) return fallbackLine(event, timestamp);
  try {
    const head = event.event === 'connection_rejected' ? headOf(event.event, jsonString(event.message)) : format.head;
    return '{"timestamp":"' + timestamp + head + membersAfter(format.body(event));
  } catch {
    return fallbackLine(event, timestamp);
  }
}

/** The fields a session's query records share. */
export interface QuerySession {
  sessionId: string;
  protocol: Protocol;
  identity: Readonly<IdentityFields>;
}

/** A query record's own fields: the statement and its outcome. */
export type QueryOutcome = Pick<QueryRecord, keyof typeof QUERY_OUTCOME>;

const outcomeBody = compile(QUERY_OUTCOME);
const sessionBody = compile(SESSION);
const identityBody = compile(IDENTITY);
const QUERY_HEAD = FORMATS.get('query')!.head;
/** Identities are shared by every session of a cached token (identityFields): serialize each once. */
const identityMembers = new WeakMap<object, string>();

/**
 * The query records of one session, the same lines formatRecord makes of a `query` event with
 * the session's fields. The session and identity fields are serialized once, not per statement:
 * they are most of a query record's text.
 */
export function queryLineFormatter(session: QuerySession): (q: QueryOutcome, timestamp: string) => string {
  const { sessionId, protocol, identity } = session;
  let tail = identityMembers.get(identity);
  if (tail === undefined) {
    tail = membersAfter(identityBody(identity));
    identityMembers.set(identity, tail);
  }
  const sessionPart = sessionBody({ sessionId, protocol });
  const head = QUERY_HEAD + (sessionPart.length > 2 ? ',' + sessionPart.slice(1, -1) : '');
  const end = tail;
  return (q, timestamp) => {
    try {
      const outcome = outcomeBody(q);
      return '{"timestamp":"' + timestamp + head + (outcome.length > 2 ? ',' + outcome.slice(1, -1) : '') + end;
    } catch {
      return fallbackLine({ event: 'query', sessionId, protocol, ...q, ...identity }, timestamp);
    }
  };
}

/**
 * A record whose values the compiled serializers refuse (a non-finite number: not made by the
 * gateway itself) or of an unknown type: JSON.stringify of the same keys in the same order, so
 * that the record is still written. Non-finite numbers become null, bigints decimal strings.
 */
function fallbackLine(event: AuditEvent, timestamp: string): string {
  const source = event as unknown as Record<string, unknown>;
  const name = String(source.event);
  const keys = (RECORD_KEYS as Record<string, readonly string[]>)[name] ?? ['timestamp', 'level', 'message', 'event', ...Object.keys(SESSION), ...Object.keys(IDENTITY)];
  const record: Record<string, unknown> = {};
  for (const key of keys) {
    if (key === 'timestamp') record.timestamp = timestamp;
    else if (key === 'level') record.level = 'info';
    else if (key === 'message') record.message = name === 'connection_rejected' ? source.message : name;
    else record[key] = source[key];
  }
  return JSON.stringify(record, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
}
