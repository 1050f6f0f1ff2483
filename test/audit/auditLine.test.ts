import fc from 'fast-check';
import winston from 'winston';
import { formatAuditLine } from '../../src/audit/auditLine';
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
});
