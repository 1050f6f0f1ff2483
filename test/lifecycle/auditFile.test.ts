import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, rmdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AuditLog } from '../../src/audit/auditLog';
import type { AuditEvent } from '../../src/audit/events';
import type { AuditConfig } from '../../src/config/schema';
import { log } from '../../src/log';
import { waitFor } from '../helpers/waitFor';

/** The audit file as log rotation and a full disk meet it: created 0600, reopened after a rename, health and audit.onFailure. */

const config = (over: Partial<AuditConfig> = {}): AuditConfig => ({ file: 'stdout', queries: true, maxQueryBytes: 4096, onFailure: 'refuse', ...over });
const end = (i: number): AuditEvent => ({
  event: 'session_end', sessionId: `pg-${i}`, protocol: 'postgres', remote: '127.0.0.1:1', durationMs: i, bytesFromClient: 1, bytesToClient: 2, queries: 0, reason: 'client_closed',
});
const ids = (f: string): string[] => readFileSync(f, 'utf8').split(os.EOL).filter(Boolean).map((l) => (JSON.parse(l) as { sessionId: string }).sessionId);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tokengate-lifetest-audit-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  jest.restoreAllMocks();
});

test('the audit file is created with mode 0600, whatever the umask', async () => {
  const file = path.join(dir, 'audit.jsonl');
  const old = process.umask(0o022);
  try {
    const audit = new AuditLog(config({ file }));
    audit.write(end(1));
    await audit.close();
  } finally {
    process.umask(old);
  }
  expect(statSync(file).mode & 0o777).toBe(0o600);
});

test('reopen() after a rename (log rotation) writes to a new file at the path; the renamed one keeps the earlier records', async () => {
  const file = path.join(dir, 'audit.jsonl');
  const audit = new AuditLog(config({ file }));
  audit.write(end(1));
  await waitFor(() => readFileSync(file, 'utf8').length > 0, { what: 'the first batch' });
  renameSync(file, `${file}.1`);
  audit.write(end(2)); // still the renamed file: it is open
  await audit.reopen();
  audit.write(end(3));
  await audit.close();
  expect(ids(`${file}.1`)).toEqual(['pg-1', 'pg-2']);
  expect(ids(file)).toEqual(['pg-3']);
  expect(statSync(file).mode & 0o777).toBe(0o600);
});

test('while the file cannot be written the log is unhealthy and admits no sessions (refuse) or still does (continue); it recovers by itself', async () => {
  const file = path.join(dir, 'audit.jsonl');
  const errors = jest.spyOn(log, 'error').mockImplementation(() => log);
  const warnings = jest.spyOn(log, 'warn').mockImplementation(() => log);
  const refuse = new AuditLog(config({ file }));
  const carryOn = new AuditLog(config({ file: path.join(dir, 'other.jsonl'), onFailure: 'continue' }));
  expect([refuse.healthy, refuse.admitsSessions]).toEqual([true, true]);
  rmSync(file);
  mkdirSync(file); // what stands where the file was cannot be opened for writing
  await refuse.reopen();
  expect([refuse.healthy, refuse.admitsSessions]).toEqual([false, false]);
  expect(String(errors.mock.calls[0][0])).toMatch(/^cannot open the audit log .*audit\.jsonl: EISDIR.*new sessions are refused/);

  rmSync(path.join(dir, 'other.jsonl'));
  mkdirSync(path.join(dir, 'other.jsonl'));
  await carryOn.reopen();
  expect([carryOn.healthy, carryOn.admitsSessions]).toEqual([false, true]);

  rmdirSync(file);
  await waitFor(() => refuse.healthy, { what: 'the audit log to be writable again', timeoutMs: 3000, intervalMs: 100 });
  expect(refuse.admitsSessions).toBe(true);
  expect(String(warnings.mock.calls.at(-1)?.[0])).toMatch(/audit\.jsonl is writable again/);
  refuse.write(end(4));
  await refuse.close();
  await carryOn.close();
  expect(ids(file)).toEqual(['pg-4']);
});
