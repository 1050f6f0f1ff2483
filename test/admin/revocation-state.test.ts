import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { startFailureMessage } from '../../src/cli/start';
import { openRevocationFile, REVOCATIONS_FILE, StateDirError } from '../../src/core/state/revocationFile';
import { ManualClock } from '../helpers/manualClock';
import { startGatewayHarness, type PgHarness, type RunningGateway } from '../integration/harness';
import { adminFiles, call, captureLog } from './adminClient';

/** Revocations in state.dir: written atomically with mode 0600, read at start, lapsed ones dropped, a bad state.dir named. */

describe('the revocations file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tokengate-state-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('each change replaces the file (mode 0600, no temp file left); a restart reads it; lapsed entries are dropped', () => {
    const now = Date.parse('2026-12-04T10:00:00Z');
    const state = join(dir, 'state');
    const store = openRevocationFile(state, now, { writable: true });
    expect(statSync(state).mode & 0o777).toBe(0o700);
    const kept = store.add({ target: { sub: 'svc-a' }, reason: 'leak', by: 'admin' }, now, 3_600_000);
    const short = store.add({ target: { jti: 'AT.1' } }, now, 60_000);
    const forever = store.add({ target: { client: 'svc-b' }, until: now + 7_200_000 }, now);
    const gone = store.add({ target: { client: 'svc-c' } }, now);
    store.remove(gone.id);
    const file = join(state, REVOCATIONS_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(state)).toEqual([REVOCATIONS_FILE]);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
      version: 1,
      revocations: [
        { id: kept.id, sub: 'svc-a', reason: 'leak', by: 'admin', createdAt: '2026-12-04T10:00:00.000Z', expiresAt: '2026-12-04T11:00:00.000Z' },
        { id: short.id, jti: 'AT.1', createdAt: '2026-12-04T10:00:00.000Z', expiresAt: '2026-12-04T10:01:00.000Z' },
        { id: forever.id, client: 'svc-b', createdAt: '2026-12-04T10:00:00.000Z', until: '2026-12-04T12:00:00.000Z', expiresAt: '2026-12-04T12:00:00.000Z' },
      ],
    });
    const again = openRevocationFile(state, now + 120_000, { writable: true });
    expect(again.list(now + 120_000)).toEqual([kept, forever]);
    expect(again.blocking({ sub: 'svc-a', issuedAt: now / 1000 }, now + 120_000)?.id).toBe(kept.id);
  });

  test('a write that fails keeps the revocation in force and says on the operational log that it will not survive a restart', () => {
    const state = join(dir, 'state');
    const store = openRevocationFile(state, Date.now(), { writable: true });
    rmSync(state, { recursive: true });
    writeFileSync(state, 'not a directory');
    const logs = captureLog();
    try {
      const r = store.add({ target: { sub: 'svc-a' } }, Date.now());
      expect(store.blocking({ sub: 'svc-a' }, Date.now())?.id).toBe(r.id);
      expect(logs.text()).toContain(`cannot write ${join(state, REVOCATIONS_FILE)} (EEXIST): revocation ${r.id} is in force in this process but the change will not survive a restart; make state.dir (${state}) writable`);
    } finally {
      logs.stop();
    }
  });

  test('no file or no directory yet: no revocations; state.dir is only created when it must be writable', () => {
    expect(openRevocationFile(join(dir, 'missing'), Date.now(), { writable: false }).list(Date.now())).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });

  test('a state.dir that cannot be written, or a file that is not a revocations file, stops the start with a message naming it', () => {
    writeFileSync(join(dir, 'plain'), 'x');
    const unwritable = join(dir, 'plain', 'state');
    expect(() => openRevocationFile(unwritable, Date.now(), { writable: true })).toThrow(StateDirError);
    expect(() => openRevocationFile(unwritable, Date.now(), { writable: true })).toThrow(`state.dir ${unwritable} is not writable (ENOTDIR)`);
    writeFileSync(join(dir, REVOCATIONS_FILE), '{"version":1,"revocations":[{"id":"rv-1"}]}');
    expect(() => openRevocationFile(dir, Date.now(), { writable: false })).toThrow(/revocations\.json is not a tokengate revocations file \(revocations\[0\] needs an id and exactly one of sub, client, jti\); restore it from a backup, or move it away/);
  });
});

describe('revocations across a restart and by the clock', () => {
  const files = adminFiles();
  let h: PgHarness;
  beforeAll(async () => {
    h = await startGatewayHarness({ protocol: 'postgres', admin: true, extraYaml: files.yaml });
  });
  afterAll(async () => {
    await h?.stop();
    files.cleanup();
  });

  const connect = async (g: RunningGateway, token: string): Promise<{ code?: string; message: string }> => {
    const c = new Client({ host: '127.0.0.1', port: g.port, user: 'reader', database: 'app', password: token });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.end();
      return { message: 'connected' };
    } catch (e) {
      return e as { code?: string; message: string };
    }
  };

  test('a revocation made before a restart still refuses the token after it', async () => {
    const token = await h.token();
    const r = await call(h.gateway, 'POST', '/revocations', { bearer: files.token, body: { sub: 'svc-reporting', reason: 'before restart' } });
    expect(r.status).toBe(201);
    await h.gateway.close();
    const restarted = await h.startGateway({ admin: true, extraYaml: files.yaml });
    const list = await call(restarted.gateway, 'GET', '/revocations', { bearer: files.token });
    expect(list.body.revocations).toMatchObject([{ id: r.body.id, sub: 'svc-reporting', reason: 'before restart', by: 'admin', createdAt: r.body.createdAt }]);
    expect(await connect(restarted, token)).toMatchObject({ code: '28P01', message: expect.stringContaining('(reason: before restart)') });
    await call(restarted.gateway, 'DELETE', `/revocations/${r.body.id}`, { bearer: files.token });
    await restarted.gateway.close();
    const third = await h.startGateway({ admin: true, extraYaml: files.yaml });
    expect((await call(third.gateway, 'GET', '/revocations', { bearer: files.token })).body.revocations).toEqual([]);
    expect(await connect(third, token)).toEqual({ message: 'connected' });
  });

  test('a revocation lapses by itself once oidc.maxTokenLifetime has passed since it was made', async () => {
    // The token first: its iat (whole seconds, rounded down) is then at or before the revocation's time.
    const token = await h.token();
    const clock = new ManualClock();
    const other = adminFiles();
    try {
      const g = await h.startGateway({ admin: true, extraYaml: other.yaml, core: { clock } });
      const r = await call(g.gateway, 'POST', '/revocations', { bearer: other.token, body: { client: 'svc-reporting' } });
      expect(Date.parse(r.body.expiresAt)).toBe(clock.now() + 3_600_000);
      expect((await connect(g, token)).code).toBe('28P01');
      clock.advance(3_599_999);
      expect((await connect(g, token)).code).toBe('28P01');
      clock.advance(1);
      expect((await call(g.gateway, 'GET', '/revocations', { bearer: other.token })).body.revocations).toEqual([]);
      expect(await connect(g, token)).toEqual({ message: 'connected' });
    } finally {
      other.cleanup();
    }
  });

  test('tokengate start names state.dir when it cannot be written', async () => {
    const plain = join(files.dir, 'plain-file');
    writeFileSync(plain, 'x');
    const yaml = files.yaml.replace(/dir: .*/, `dir: ${plain}/state`);
    const err = await h.startGateway({ admin: true, extraYaml: yaml }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StateDirError);
    expect(startFailureMessage(err, h.gateway.config.current())).toBe(
      `tokengate could not start: state.dir ${plain}/state is not writable (ENOTDIR): revocations made through the admin API must survive a restart. ` +
      'Create it for the tokengate user (systemd: StateDirectory=tokengate) or point state.dir at a writable directory',
    );
  });
});
