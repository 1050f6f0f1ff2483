import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminAuth, NOT_CONFIGURED } from '../../src/admin/auth';
import type { AdminConfig } from '../../src/config/schema';
import { InProcessRevocations } from '../../src/core/state/revocations';
import { TokenRejectedError, type Identity } from '../../src/identity/types';
import { captureLog } from './adminClient';

/**
 * The admin bearer on its own: the token file read again on refresh (rotation by reload), and
 * what an unusable token file does. The issuer path is exercised against the dev issuer in
 * admin-api.test.ts; here a stand-in verifier knows one operator token.
 */

const operator: Identity = { sub: 'alice', groups: ['db-admins'], scopes: ['db.connect'], issuer: 'x', expiresAt: Date.now() / 1000 + 600 };
const verifier = {
  verify: async (t: string): Promise<Identity> => {
    if (t === 'alice-token') return operator;
    throw new TokenRejectedError('malformed', 'not a token');
  },
};

let dir: string;
let logs: ReturnType<typeof captureLog>;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tokengate-auth-'));
  logs = captureLog();
});
afterEach(() => {
  logs.stop();
  rmSync(dir, { recursive: true, force: true });
});

const auth = (admin: AdminConfig): AdminAuth => new AdminAuth({ admin: () => admin, verifier: () => verifier, revocations: new InProcessRevocations(), now: Date.now });

test('the token file is read again on refresh: a rotated token replaces the old one', async () => {
  const file = join(dir, 'token');
  writeFileSync(file, '  first-token\n', { mode: 0o600 });
  const a = auth({ tokenFile: file, metricsRequireAuth: false });
  expect(await a.authenticate('Bearer first-token')).toEqual({ ok: true, caller: 'admin', identity: {} });
  writeFileSync(file, 'second-token\n');
  a.refresh();
  expect(await a.authenticate('Bearer first-token')).toMatchObject({ ok: false, status: 401 });
  expect(await a.authenticate('bearer second-token')).toMatchObject({ ok: true, caller: 'admin' });
  expect(logs.text()).toBe('');
});

test('a missing or empty token file is an operational-log error and accepts nothing; a readable one is a warning', async () => {
  const missing = auth({ tokenFile: join(dir, 'nope'), metricsRequireAuth: false });
  expect(await missing.authenticate('Bearer ')).toMatchObject({ ok: false, status: 401 });
  expect(logs.text()).toContain(`cannot read admin.tokenFile ${join(dir, 'nope')} (ENOENT)`);
  writeFileSync(join(dir, 'empty'), '\n');
  const empty = auth({ tokenFile: join(dir, 'empty'), metricsRequireAuth: false });
  expect(await empty.authenticate('Bearer x')).toMatchObject({ ok: false, status: 401 });
  expect(logs.text()).toContain(`admin.tokenFile ${join(dir, 'empty')} is empty`);
  writeFileSync(join(dir, 'open'), 'tok-123');
  chmodSync(join(dir, 'open'), 0o644);
  // At start the config warnings say it; a reload that finds it readable says it here.
  auth({ tokenFile: join(dir, 'open'), metricsRequireAuth: false }).refresh();
  expect(logs.text()).toContain(`admin.tokenFile ${join(dir, 'open')} can be read by other users (mode 0644); chmod 600 it`);
  expect(logs.text()).not.toContain('tok-123');
});

test('admin.match alone: an operator token matching it, one that does not, a revoked one; nothing configured is 403', async () => {
  const a = auth({ match: { groups: ['db-admins'] }, metricsRequireAuth: false });
  expect(await a.authenticate('Bearer alice-token')).toMatchObject({ ok: true, caller: 'alice', identity: { sub: 'alice', groups: ['db-admins'] } });
  expect(await a.authenticate('Bearer other')).toMatchObject({ ok: false, status: 401 });
  expect(await a.authenticate(undefined)).toMatchObject({ ok: false, status: 401 });
  const strict = auth({ match: { groups: ['root'] }, metricsRequireAuth: false });
  expect(await strict.authenticate('Bearer alice-token')).toMatchObject({ ok: false, status: 403, caller: 'alice' });
  const revocations = new InProcessRevocations();
  revocations.add({ target: { sub: 'alice' } }, Date.now());
  const revoked = new AdminAuth({ admin: () => ({ match: { groups: ['db-admins'] }, metricsRequireAuth: false }), verifier: () => verifier, revocations, now: Date.now });
  expect(await revoked.authenticate('Bearer alice-token')).toMatchObject({ ok: false, status: 401 });
  expect(await auth({ metricsRequireAuth: false }).authenticate('Bearer alice-token')).toEqual({ ok: false, status: 403, error: NOT_CONFIGURED });
});
