import fc from 'fast-check';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AuditLog } from '../../src/audit/auditLog';
import type { AuditEvent } from '../../src/audit/events';
import type { AuditConfig } from '../../src/config/schema';
import { log } from '../../src/log';
import { MemoryTransport } from '../helpers/memoryTransport';

const config = (over: Partial<AuditConfig> = {}): AuditConfig => ({ file: 'stdout', queries: true, maxQueryBytes: 4096, onFailure: 'refuse', ...over });
const identity = Object.freeze({ sub: 'svc-a', cid: 'svc-a', groups: ['g'], tokenExpiresAt: '2026-11-28T14:00:00.000Z' });
const end = (i: number): AuditEvent => ({
  event: 'session_end', sessionId: `pg-${i}`, protocol: 'postgres', remote: '127.0.0.1:1', durationMs: i, bytesFromClient: 1, bytesToClient: 2, queries: 0, reason: 'client_closed', ...identity,
});

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tokengate-audit-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  jest.restoreAllMocks();
});

describe('AuditLog', () => {
  test('reconfigure with a new audit.file sends later records there; the old file keeps what was written before', async () => {
    const first = path.join(dir, 'first.jsonl');
    const second = path.join(dir, 'second.jsonl');
    const audit = new AuditLog(config({ file: first }));
    audit.write(end(1));
    audit.reconfigure(config({ file: second, queries: false }));
    expect(audit.config.queries).toBe(false);
    audit.write(end(2));
    await audit.close();
    const ids = (f: string): string[] => readFileSync(f, 'utf8').split(os.EOL).filter(Boolean).map((l) => (JSON.parse(l) as { sessionId: string }).sessionId);
    await new Promise((r) => setImmediate(r));
    expect(ids(first)).toEqual(['pg-1']);
    expect(ids(second)).toEqual(['pg-2']);
  });

  test('appends the lines to audit.file in batches, creating its directory; close() writes what is pending', async () => {
    const file = path.join(dir, 'logs', 'audit.jsonl');
    const audit = new AuditLog(config({ file }));
    audit.write(end(1));
    audit.write(end(2));
    await new Promise((r) => setTimeout(r, 100));
    audit.write(end(3));
    await audit.close();
    const lines = readFileSync(file, 'utf8').split(os.EOL);
    expect(lines.pop()).toBe('');
    expect(lines.map((l) => (JSON.parse(l) as { sessionId: string }).sessionId)).toEqual(['pg-1', 'pg-2', 'pg-3']);
  });

  test('an audit file that cannot be opened at startup stops the start with the path; later failures are reported once and writing goes on without throwing', async () => {
    const file = path.join(dir, 'taken');
    mkdirSync(file); // a directory where the file should be
    expect(() => new AuditLog(config({ file }))).toThrow(expect.objectContaining({ code: 'EISDIR', path: file }));
    const good = path.join(dir, 'good.jsonl');
    const audit = new AuditLog(config({ file: good }));
    rmSync(good);
    mkdirSync(good);
    const errors = jest.spyOn(log, 'error').mockImplementation(() => log);
    await audit.reopen();
    audit.write(end(1));
    audit.write(end(2));
    await new Promise((r) => setTimeout(r, 50));
    await audit.close();
    expect(errors).toHaveBeenCalledTimes(1);
    expect(String(errors.mock.calls[0][0])).toMatch(/^cannot open the audit log .*good\.jsonl: .*; audit records are being lost/);
  });

  test('a sink gets each line at once; a session\'s query log writes the lines write() makes of its query events', () => {
    const sink = new MemoryTransport();
    const audit = new AuditLog(config(), sink);
    const queries = audit.queryLog({ sessionId: 'pg-7', protocol: 'postgres', identity });
    const q = { sql: 'SELECT "x"\n', truncated: false, durationMs: 2, tag: 'SELECT 1', sqlState: undefined, error: undefined };
    queries.write(q);
    audit.write({ event: 'query', sessionId: 'pg-7', protocol: 'postgres', ...q, ...identity });
    expect(sink.lines).toHaveLength(2);
    const strip = (line: string) => line.replace(/"timestamp":"[^"]*"/, '');
    expect(strip(sink.lines[0])).toBe(strip(sink.lines[1]));
    expect(sink.records[0]).toMatchObject({ event: 'query', sql: 'SELECT "x"\n', sessionId: 'pg-7', sub: 'svc-a' });
  });

  test('clip() cuts SQL at maxQueryBytes of UTF-8, on a character boundary', () => {
    const audit = (max: number) => new AuditLog(config({ maxQueryBytes: max }), new MemoryTransport());
    expect(audit(4).clip('SELECT')).toEqual({ sql: 'SELE', truncated: true });
    expect(audit(6).clip('SELECT')).toEqual({ sql: 'SELECT', truncated: false });
    expect(audit(2).clip('éé')).toEqual({ sql: 'é', truncated: true });
    expect(audit(3).clip('éé')).toEqual({ sql: 'é', truncated: true });
    expect(audit(0).clip('')).toEqual({ sql: '', truncated: false });
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.nat({ max: 120 }), (sql, max) => {
      const { sql: out, truncated } = audit(max).clip(sql);
      const bytes = Buffer.byteLength(sql);
      expect(truncated).toBe(bytes > max);
      if (!truncated) expect(out).toBe(sql);
      else {
        expect(Buffer.byteLength(out)).toBeLessThanOrEqual(max);
        expect(sql.startsWith(out)).toBe(true);
      }
    }), { numRuns: 1000 });
  });
});
