import { join } from 'node:path';
import { Client } from 'pg';
import { ConfigError } from '../../src/config/problems';
import { adminFiles } from '../admin/adminClient';
import { runCli } from '../helpers/runCli';
import { waitFor } from '../helpers/waitFor';
import { startGatewayHarness, type PgHarness } from '../integration/harness';

/**
 * The admin commands against a real gateway's admin API (PostgreSQL upstream, dev issuer): the
 * operator's walk through an incident — list the agent's sessions, revoke it, see the revocation,
 * lift it, kill a session, reload.
 */

const files = adminFiles();
let h: PgHarness;
let url: string;

const cli = (args: string[]) =>
  runCli([...args, '--admin', url, '--admin-token-file', join(files.dir, 'admin-token')], { env: { TOKENGATE_ADMIN_URL: undefined, TOKENGATE_ADMIN_TOKEN: undefined } });

async function connect(clientId: string): Promise<{ client: Client; errors: Error[] }> {
  const errors: Error[] = [];
  const client = new Client({ host: '127.0.0.1', port: h.port, user: 'reader', database: 'app', password: await h.token(clientId) });
  client.on('error', (e) => errors.push(e));
  await client.connect();
  return { client, errors };
}

beforeAll(async () => {
  // The harness's config is not a file: reload() reads it again through this (once it answers a broken file).
  let broken = false;
  h = await startGatewayHarness({
    protocol: 'postgres', admin: true, extraYaml: files.yaml,
    core: {
      loadConfig: () => {
        if (broken) throw new ConfigError('tokengate.yaml', [{ path: 'grants.0.roles', message: 'must list at least one value' }]);
        broken = true;
        return h.gateway.config.current();
      },
    },
  });
  url = `http://127.0.0.1:${h.gateway.admin!.port}`;
});
afterAll(async () => {
  await h?.stop();
  files.cleanup();
});

test('sessions, revoke, revocations, unrevoke: the revoked agent\'s live session ends', async () => {
  const { client, errors } = await connect('svc-reporting');
  await client.query('SELECT 1');
  const sub = h.gateway.sessions.select()[0].info().sub!;

  const listed = await cli(['sessions', '--json', '--sub', sub]);
  expect(listed.code).toBe(0);
  const sessions = JSON.parse(listed.stdout).sessions;
  expect(sessions).toHaveLength(1);
  expect(sessions[0]).toMatchObject({ protocol: 'postgres', sub, role: 'reader', database: 'app', queries: 1 });

  const table = await cli(['sessions']);
  expect(table.stdout).toMatch(/^ID\s+INSTANCE\s+PROTOCOL\s+SUB/);
  expect(table.stdout).toContain(sessions[0].id);

  const revoked = await cli(['revoke', '--sub', sub, '--reason', 'incident 42', '--json']);
  expect(revoked.code).toBe(0);
  const r = JSON.parse(revoked.stdout);
  expect(r.sessionsEnded).toBe(1);
  await waitFor(() => errors.length > 0, { what: 'the session to end', timeoutMs: 1000 });
  expect((errors[0] as Error & { code?: string }).code).toBe('57P01');

  const list = await cli(['revocations']);
  expect(list.code).toBe(0);
  expect(list.stdout).toMatch(new RegExp(`${r.id}\\s+sub=${sub}\\s+incident 42\\s+admin`));

  const lifted = await cli(['unrevoke', r.id]);
  expect(lifted.code).toBe(0);
  expect(JSON.parse((await cli(['revocations', '--json'])).stdout).revocations).toEqual([]);
  const again = await cli(['unrevoke', r.id]);
  expect(again.code).toBe(1);
  expect(again.stderr).toMatch(/HTTP 404: no revocation/);
});

test('kill ends one session with 57P01; reload reports what changed', async () => {
  const { client, errors } = await connect('svc-reporting');
  const id = h.gateway.sessions.select()[0].id;
  const killed = await cli(['kill', id]);
  expect(killed.code).toBe(0);
  await waitFor(() => errors.length > 0, { what: 'the session to end', timeoutMs: 1000 });
  expect((errors[0] as Error & { code?: string }).code).toBe('57P01');
  await client.end().catch(() => undefined);
  expect((await cli(['kill', id])).code).toBe(1);

  const reload = await cli(['reload']);
  expect([reload.code, reload.stderr]).toEqual([0, '']);
  const refused = await cli(['reload']);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain('grants.0.roles: must list at least one value');
});

test('a wrong bearer fails with the server refusal and exit 1, and the token is never printed', async () => {
  const r = await runCli(['sessions', '--admin', url], { env: { TOKENGATE_ADMIN_TOKEN: 'wrong-token-value' } });
  expect(r.code).toBe(1);
  expect(r.stdout + r.stderr).not.toContain('wrong-token-value');
  expect(r.stdout + r.stderr).not.toContain(files.token);
});
