import fc from 'fast-check';
import winston from 'winston';
import { formatAuditLine, isoNow } from '../../src/audit/auditLine';
import type { AuditEvent } from '../../src/audit/events';

/**
 * The reference: what the audit log wrote through winston before formatAuditLine existed,
 * `transform({ message: event.event, ...event, level: 'info' })`, with the clock (which
 * timestamp() reads when the record has no truthy timestamp of its own) fixed at `now`.
 */
const WINSTON = winston.format.combine(winston.format.timestamp(), winston.format.json());
const MESSAGE = Symbol.for('message');
const winstonLine = (event: object, now: string): string => {
  const info: Record<string, unknown> = { message: (event as { event: string }).event, ...event, level: 'info' };
  if (!info.timestamp) info.timestamp = now;
  return (WINSTON.transform(info as winston.Logform.TransformableInfo) as Record<symbol, string>)[MESSAGE];
};

const TS = '2026-11-28T13:00:00.000Z';

describe('formatAuditLine', () => {
  test('the records the gateway writes come out byte for byte as winston made them', () => {
    const events: AuditEvent[] = [
      {
        event: 'connection_accepted', sessionId: 'my-0a1b2c3d4e5f', protocol: 'mysql', remote: '127.0.0.1:5555', tls: false,
        grant: 'reporting', upstream: 'main', role: 'reader', database: 'app', upstreamDatabase: 'app_prod', applicationName: undefined,
        sub: 'svc-reporting', cid: 'svc-reporting', groups: ['b', 'a'], jti: undefined, tokenExpiresAt: '2026-11-28T14:00:00.000Z',
      },
      { event: 'connection_rejected', sessionId: 'pg-1', protocol: 'postgres', remote: '[::1]:1', tls: true, reason: 'expired', message: 'token "expired" \u2028 \ud800 é\n\\' },
      { event: 'query', sessionId: 'pg-1', protocol: 'postgres', sql: "SELECT '\u0000\u007f'", truncated: false, durationMs: 0.125, tag: 'SELECT 1' },
      { event: 'session_end', sessionId: 'pg-1', protocol: 'postgres', remote: 'x', durationMs: 5, bytesFromClient: 0, bytesToClient: 1e21, queries: -0, reason: 'client_closed', upstreamReused: true, groups: [] },
    ];
    for (const e of events) expect(formatAuditLine(e, TS)).toBe(winstonLine(e, TS));
    // A rejection's own message wins over the event name, as with winston.
    expect(JSON.parse(formatAuditLine(events[1], TS)).message).toBe((events[1] as { message: string }).message);
    // Without a timestamp argument, the current time.
    expect(Date.parse(JSON.parse(formatAuditLine(events[0])).timestamp)).toBeGreaterThan(Date.now() - 60_000);
  });

  test('repeated key sets and values (the cached layouts and plain strings) still give winston bytes', () => {
    // Built as the sessions build them: a literal with a frozen identity spread in.
    const identity = Object.freeze({ sub: 'svc-reporting', cid: '0oa1', groups: ['db-readers', 'analytics'], jti: 'AT.1', tokenExpiresAt: '2026-11-28T14:00:00.000Z' });
    const other = Object.freeze({ sub: 'svc "quoted" \\ é', cid: 'x\u0001', groups: ['a"b', '\u2028', 'ü'], jti: undefined, tokenExpiresAt: '\ud800' });
    const records: object[] = [];
    for (let i = 0; i < 40; i++) {
      const id = i % 3 === 2 ? other : i % 7 === 0 ? {} : identity;
      // The same content as a different string object; then a value needing escapes in the same field.
      const sessionId = i % 5 === 4 ? `pg-"${i}"` : 'pg-' + String(i).padStart(12, '0');
      const remote = i % 4 === 0 ? `10.0.0.${i}:${30000 + i}` : i % 4 === 1 ? '10.0.0.1:1\n' : '10.0.0.1:1';
      records.push({
        event: 'connection_accepted', sessionId, protocol: 'postgres', remote, tls: i % 2 === 0, grant: 'reporting', upstream: 'main',
        role: i % 6 === 0 ? 'réader' : 'reader', database: 'app', upstreamDatabase: 'app_prod', applicationName: i % 3 ? 'psql' : undefined, ...id,
      });
      records.push({
        event: 'session_end', sessionId, protocol: 'postgres', remote, durationMs: i % 9 === 0 ? NaN : i * 1.5, bytesFromClient: i % 11 === 0 ? Infinity : i,
        bytesToClient: -0, queries: i, reason: i % 2 ? 'client_closed' : 'upstream "closed"', upstreamReused: i % 2 === 0, ...id,
      });
    }
    for (const r of records) expect(formatAuditLine(r as AuditEvent, TS)).toBe(winstonLine(r, TS));
    // A record's own truthy timestamp wins; a falsy one gives way to the clock.
    for (const timestamp of ['then', '', 0, 'a"b'] as const) {
      const r = { event: 'query', sessionId: 'pg-1', protocol: 'postgres', sql: 'SELECT 1', truncated: false, durationMs: 1, timestamp };
      expect(formatAuditLine(r as unknown as AuditEvent, TS)).toBe(winstonLine(r, TS));
    }
  });

  test('an enumerable property on Object.prototype is left out, as by winston', () => {
    const proto = Object.prototype as Record<string, unknown>;
    const r = { event: 'session_end', sessionId: 'pg-1', protocol: 'postgres', remote: 'x', durationMs: 1, bytesFromClient: 0, bytesToClient: 0, queries: 0, reason: 'x' };
    expect(formatAuditLine(r as AuditEvent, TS)).toBe(winstonLine(r, TS));
    proto.polluted = 'yes';
    try {
      expect(formatAuditLine({ ...r } as AuditEvent, TS)).toBe(winstonLine(r, TS));
      expect(formatAuditLine({ ...r, sessionId: 'pg-2' } as AuditEvent, TS)).not.toContain('polluted');
    } finally {
      delete proto.polluted;
    }
    expect(formatAuditLine({ ...r } as AuditEvent, TS)).toBe(winstonLine(r, TS));
  });

  test('any record of plain data: the same bytes as winston', () => {
    const key = fc.oneof(fc.string(), fc.constantFrom('message', 'level', 'timestamp', 'event', '0', '10', '9', 'a', 'A'));
    const value = fc.letrec((tie) => ({
      leaf: fc.oneof(
        fc.string(), fc.string({ unit: 'binary' }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined),
        fc.bigInt(), fc.date({ noInvalidDate: true }),
      ),
      node: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(key, tie('node'), { maxKeys: 4 })),
    })).node;
    fc.assert(fc.property(fc.dictionary(key, value, { maxKeys: 10 }), fc.string(), (fields, name) => {
      const event = { ...fields, event: name } as unknown as AuditEvent;
      expect(formatAuditLine(event, TS)).toBe(winstonLine(event, TS));
    }), { numRuns: 1000 });
  });

  test('sequences of records sharing key sets and values: the same bytes as winston', () => {
    // Few event names, keys and values, so layouts and remembered plain values are reused,
    // with the tricky strings (quotes, backslashes, controls, non-ASCII, lone surrogates) among them.
    const strings = fc.oneof(
      fc.constantFrom('', 'plain', 'pg-0a1b2c3d4e5f', '10.0.0.1:5432', 'a"b', 'a\\b', '\u0000', '\n', '\u007f', 'é', '\u2028', '\ud800', '\udc00x', '😀'),
      fc.string({ maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 6 }),
    );
    const value = fc.oneof(
      strings, strings.map((s) => s + ''), fc.integer(), fc.constantFrom(NaN, Infinity, -Infinity, -0, 1e21, 0.1), fc.boolean(), fc.constant(null), fc.constant(undefined),
      fc.bigInt(), fc.array(strings, { maxLength: 3 }), fc.dictionary(fc.constantFrom('b', 'a', 'message'), strings, { maxKeys: 2 }),
      fc.date({ noInvalidDate: true }),
    );
    const record = fc.record({
      event: fc.constantFrom('connection_accepted', 'session_end', 'x"y'),
      fields: fc.dictionary(fc.constantFrom('sessionId', 'remote', 'sub', 'groups', 'message', 'timestamp', 'level', 'tls', 'zz', '10', '2'), value, { maxKeys: 6 }),
    });
    fc.assert(fc.property(fc.array(record, { minLength: 1, maxLength: 30 }), (records) => {
      for (const { event, fields } of records) {
        const e = { event, ...fields } as unknown as AuditEvent;
        expect(formatAuditLine(e, TS)).toBe(winstonLine(e, TS));
      }
    }), { numRuns: 300 });
  });
});

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
});
