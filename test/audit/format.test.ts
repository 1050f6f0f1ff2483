import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { formatRecord, queryLineFormatter, RECORD_KEYS, type QueryOutcome } from '../../src/audit/format';
import type { AuditEvent, IdentityFields } from '../../src/audit/events';

const TS = '2026-11-28T13:00:00.000Z';
const EVENTS = ['connection_accepted', 'connection_rejected', 'query', 'session_end', 'admin_request'] as const;
const HEAD = ['timestamp', 'level', 'message', 'event'];
const IDENTITY = ['sub', 'cid', 'groups', 'jti', 'tokenExpiresAt'];

const identity = Object.freeze({ sub: 'svc-reporting', cid: '0oa1', groups: ['db-readers', 'analytics'], jti: 'AT.1', tokenExpiresAt: '2026-11-28T14:00:00.000Z' });

/** The keys of a parsed line, which must be the documented order with the absent fields left out. */
const keysOf = (line: string): string[] => Object.keys(JSON.parse(line) as object);
const documentedOrder = (event: AuditEvent): string[] =>
  RECORD_KEYS[event.event].filter((k) => HEAD.includes(k) || (event as unknown as Record<string, unknown>)[k] !== undefined);

/** What a line must parse to: the event's own defined fields, with level, message and timestamp. */
function expectedObject(event: AuditEvent): Record<string, unknown> {
  const source = event as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { timestamp: TS, level: 'info', message: event.event === 'connection_rejected' ? event.message : event.event, event: event.event };
  for (const key of RECORD_KEYS[event.event]) if (!HEAD.includes(key) && source[key] !== undefined) out[key] = source[key];
  // -0 is written as 0 (as by JSON.stringify), which toEqual tells apart from -0.
  for (const key of Object.keys(out)) if (Object.is(out[key], -0)) out[key] = 0;
  return out;
}

describe('formatRecord', () => {
  test('the records the gateway writes: timestamp, level, message, event, the type\'s fields, the identity fields', () => {
    const accepted: AuditEvent = {
      event: 'connection_accepted', sessionId: 'my-0a1b2c3d4e5f', protocol: 'mysql', remote: '127.0.0.1:5555', tls: false,
      grant: 'reporting', upstream: 'main', role: 'reader', database: 'app', upstreamDatabase: 'app_prod', applicationName: undefined,
      sub: 'svc-reporting', cid: 'svc-reporting', groups: ['b', 'a'], jti: undefined, tokenExpiresAt: '2026-11-28T14:00:00.000Z',
    };
    expect(formatRecord(accepted, TS)).toBe(
      '{"timestamp":"2026-11-28T13:00:00.000Z","level":"info","message":"connection_accepted","event":"connection_accepted","sessionId":"my-0a1b2c3d4e5f",' +
      '"protocol":"mysql","remote":"127.0.0.1:5555","tls":false,"grant":"reporting","upstream":"main","role":"reader","database":"app",' +
      '"upstreamDatabase":"app_prod","sub":"svc-reporting","cid":"svc-reporting","groups":["b","a"],"tokenExpiresAt":"2026-11-28T14:00:00.000Z"}',
    );
    // A rejection's own message (escaped) stands where the event name stands in the others.
    const rejected: AuditEvent = { event: 'connection_rejected', sessionId: 'pg-1', protocol: 'postgres', remote: '[::1]:1', tls: true, reason: 'expired', message: 'token "expired" \u2028 \ud800 é\n\\' };
    expect(formatRecord(rejected, TS)).toBe(
      '{"timestamp":"2026-11-28T13:00:00.000Z","level":"info","message":"token \\"expired\\" \u2028 \\ud800 é\\n\\\\","event":"connection_rejected",' +
      '"sessionId":"pg-1","protocol":"postgres","remote":"[::1]:1","tls":true,"reason":"expired"}',
    );
    const query: AuditEvent = { event: 'query', sessionId: 'pg-1', protocol: 'postgres', sql: "SELECT '\u0000\u007f'", truncated: false, durationMs: 0.125, tag: 'SELECT 1', ...identity };
    expect(formatRecord(query, TS)).toBe(
      '{"timestamp":"2026-11-28T13:00:00.000Z","level":"info","message":"query","event":"query","sessionId":"pg-1","protocol":"postgres",' +
      '"sql":"SELECT \'\\u0000\u007f\'","truncated":false,"durationMs":0.125,"tag":"SELECT 1",' +
      '"sub":"svc-reporting","cid":"0oa1","groups":["db-readers","analytics"],"jti":"AT.1","tokenExpiresAt":"2026-11-28T14:00:00.000Z"}',
    );
    const end: AuditEvent = { event: 'session_end', sessionId: 'pg-1', protocol: 'postgres', remote: 'x', durationMs: 5, bytesFromClient: 0, bytesToClient: 1e21, queries: -0, reason: 'client_closed', upstreamReused: true, groups: [] };
    expect(formatRecord(end, TS)).toBe(
      '{"timestamp":"2026-11-28T13:00:00.000Z","level":"info","message":"session_end","event":"session_end","sessionId":"pg-1","protocol":"postgres",' +
      '"remote":"x","durationMs":5,"bytesFromClient":0,"bytesToClient":1e+21,"queries":0,"reason":"client_closed","upstreamReused":true,"groups":[]}',
    );
    for (const e of [accepted, rejected, query, end]) expect(JSON.parse(formatRecord(e, TS))).toEqual(expectedObject(e));
  });

  test('any values of the documented types: one line that parses back to the event, keys in the documented order', () => {
    const text = fc.oneof(
      fc.string(), fc.string({ unit: 'binary' }), fc.string({ minLength: 42, maxLength: 120 }),
      fc.constantFrom('', 'a"b', 'a\\b', '\u0000', '\n', '\r\n', '\u007f', 'é', '\u2028', '\ud800', '\udc00x', '😀', 'x'.repeat(5000) + '"'),
    );
    const optional = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
    const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
    const id = fc.record({ sub: optional(text), cid: optional(text), groups: optional(fc.array(text, { maxLength: 4 })), jti: optional(text), tokenExpiresAt: optional(text) });
    const session = { sessionId: text, protocol: fc.constantFrom('postgres' as const, 'mysql' as const) };
    const event: fc.Arbitrary<AuditEvent> = fc.oneof(
      fc.record({
        event: fc.constant('connection_accepted' as const), ...session, remote: text, tls: fc.boolean(), grant: text, upstream: text, role: text,
        database: text, upstreamDatabase: text, applicationName: optional(text),
      }),
      fc.record({ event: fc.constant('connection_rejected' as const), ...session, remote: text, tls: fc.boolean(), reason: text, message: text, role: optional(text), database: optional(text) }),
      fc.record({ event: fc.constant('query' as const), ...session, sql: text, truncated: fc.boolean(), durationMs: finite, tag: optional(text), sqlState: optional(text), error: optional(text) }),
      fc.record({
        event: fc.constant('session_end' as const), ...session, remote: text, durationMs: finite, bytesFromClient: fc.nat(), bytesToClient: fc.maxSafeNat(),
        queries: fc.nat(), reason: text, upstreamReused: optional(fc.boolean()), endedBy: optional(text),
      }),
      fc.record({
        event: fc.constant('admin_request' as const), method: text, path: text, remote: text, status: fc.integer({ min: 100, max: 599 }),
        caller: optional(text), action: optional(text), error: optional(text),
      }),
    ).chain((e) => id.map((i) => ({ ...e, ...i }) as AuditEvent));
    fc.assert(fc.property(event, (e) => {
      const line = formatRecord(e, TS);
      expect(line).not.toMatch(/[\n\r]/);
      expect(JSON.parse(line)).toEqual(expectedObject(e)); // strings round-trip: escaping is right
      expect(keysOf(line)).toEqual(documentedOrder(e)); // undefined fields are left out, the rest in order
    }), { numRuns: 1000 });
  });

  test('only documented fields are written: extra properties (a token, a password) never reach a line', () => {
    const secrets = { token: 'eyJhbGciOi.c2VjcmV0', password: 'hunter2-secret', accessToken: 'at-secret', clientSecret: 'cs-secret', authorization: 'Bearer secret' };
    for (const name of EVENTS) {
      const e = { event: name, sessionId: 'pg-1', protocol: 'postgres', remote: 'x', reason: 'r', message: 'm', sql: 'S', truncated: false, durationMs: 1, ...secrets, ...identity } as unknown as AuditEvent;
      const line = formatRecord(e, TS);
      for (const value of Object.values(secrets)) expect(line).not.toContain(value);
      expect(keysOf(line).every((k) => RECORD_KEYS[name].includes(k))).toBe(true);
    }
    const fields = new Set(Object.values(RECORD_KEYS).flat());
    fc.assert(fc.property(fc.dictionary(fc.string().filter((k) => !fields.has(k)), fc.string({ minLength: 1 }).map((s) => `SECRET<${s}>`), { maxKeys: 8 }), fc.constantFrom(...EVENTS), (extra, name) => {
      const e = { ...extra, event: name, sessionId: 'pg-1', protocol: 'postgres', remote: 'x', reason: 'r', message: 'm', sql: 'S', truncated: false, durationMs: 1 } as unknown as AuditEvent;
      const line = formatRecord(e, TS);
      expect(line).not.toContain('SECRET<');
      expect(keysOf(line)).toEqual(documentedOrder(e));
    }), { numRuns: 300 });
  });

  test('an enumerable property on Object.prototype that is no record field is left out', () => {
    const proto = Object.prototype as Record<string, unknown>;
    const r = { event: 'session_end', sessionId: 'pg-1', protocol: 'postgres', remote: 'x', durationMs: 1, bytesFromClient: 0, bytesToClient: 0, queries: 0, reason: 'x' } as AuditEvent;
    const before = formatRecord(r, TS);
    proto.polluted = 'yes';
    try {
      expect(formatRecord({ ...r }, TS)).toBe(before);
    } finally {
      delete proto.polluted;
    }
  });

  test('bigint counts are written as exact JSON integers', () => {
    const e = { event: 'session_end', sessionId: 'pg-1', protocol: 'postgres', remote: 'x', durationMs: 1, bytesFromClient: 2n ** 70n, bytesToClient: 0n, queries: 3n, reason: 'x' } as unknown as AuditEvent;
    const line = formatRecord(e, TS);
    expect(line).toContain('"bytesFromClient":1180591620717411303424,"bytesToClient":0,"queries":3,');
    expect(keysOf(line)).toEqual(documentedOrder(e));
  });

  test('a value the serializers refuse (a non-finite number) still gives the record, in the same order, with null', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const e: AuditEvent = { event: 'session_end', sessionId: 'pg-1', protocol: 'postgres', remote: 'x', durationMs: bad, bytesFromClient: 1, bytesToClient: 2n as unknown as number, queries: NaN, reason: 'x', ...identity };
      const line = formatRecord(e, TS);
      expect(keysOf(line)).toEqual(documentedOrder(e));
      const parsed = JSON.parse(line) as Record<string, unknown>;
      expect(parsed.durationMs).toBeNull();
      expect(parsed.queries).toBeNull();
      expect(parsed.sub).toBe('svc-reporting');
    }
  });
});

describe('queryLineFormatter', () => {
  test('a session\'s query lines are the lines formatRecord makes of the same query events', () => {
    const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('', 'a"b', '\n', '\ud800', 'x'.repeat(60)));
    const optional = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
    const ids = fc.record({ sub: optional(text), cid: optional(text), groups: optional(fc.array(text, { maxLength: 3 })), jti: optional(text), tokenExpiresAt: optional(text) });
    const outcome: fc.Arbitrary<QueryOutcome> = fc.record({
      sql: text, truncated: fc.boolean(), durationMs: fc.oneof(fc.nat(), fc.double({ noNaN: true }), fc.constant(NaN)), tag: optional(text), sqlState: optional(text), error: optional(text),
    });
    fc.assert(fc.property(text, fc.constantFrom('postgres' as const, 'mysql' as const), ids, fc.array(outcome, { minLength: 1, maxLength: 5 }), (sessionId, protocol, id, queries) => {
      const identityFields: Readonly<IdentityFields> = Object.freeze(id);
      const format = queryLineFormatter({ sessionId, protocol, identity: identityFields });
      for (const q of queries) {
        const line = format(q, TS);
        expect(line).toBe(formatRecord({ event: 'query', sessionId, protocol, ...q, ...identityFields }, TS));
      }
    }), { numRuns: 500 });
  });
});

describe('docs/audit.md', () => {
  const doc = readFileSync(path.join(__dirname, '../../docs/audit.md'), 'utf8');
  /** The field names of the table under a heading, in order. */
  const tableAfter = (heading: string): string[] => {
    const section = doc.slice(doc.indexOf(`\n${heading}\n`));
    const rows = section.split('\n').slice(1);
    const start = rows.findIndex((l) => l.startsWith('| field |'));
    const fields: string[] = [];
    for (const row of rows.slice(start + 2)) {
      const m = /^\| `([A-Za-z]+)` \|/.exec(row);
      if (!m) break;
      fields.push(m[1]);
    }
    return fields;
  };

  test('lists every field of every event type, in the order the lines have them', () => {
    expect(tableAfter('### Fields of every record')).toEqual(HEAD);
    expect(tableAfter('### Identity fields')).toEqual(IDENTITY);
    for (const name of EVENTS) expect([...HEAD, ...tableAfter(`### \`${name}\``), ...IDENTITY]).toEqual(RECORD_KEYS[name]);
  });

  test('its examples are lines the formatter makes', () => {
    const block = /```json\n([\s\S]*?)```/.exec(doc)![1];
    const lines = block.trim().split('\n');
    expect(new Set(lines.map((l) => (JSON.parse(l) as { event: string }).event))).toEqual(new Set(EVENTS));
    for (const line of lines) {
      const { timestamp, level, ...rest } = JSON.parse(line) as Record<string, unknown>;
      expect(level).toBe('info');
      const event = rest as unknown as AuditEvent;
      if (event.event !== 'connection_rejected') delete (rest as { message?: unknown }).message;
      expect(formatRecord(event, timestamp as string)).toBe(line);
    }
  });
});
