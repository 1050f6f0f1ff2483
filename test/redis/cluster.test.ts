import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { waitFor } from '../helpers/waitFor';
import { adminFiles, call, captureLog } from '../admin/adminClient';
import { startGatewayHarness, type PgHarness, type RunningGateway } from '../integration/harness';
import { freePort, killChild, spawnRedis } from '../helpers/redisServer';

/**
 * A throwaway three-node Redis Cluster (no replicas): two gateways given one node's address find
 * the others, keep every key in one slot (the {state} hash tag: the lease script touches several),
 * and share revocations, caps and the session list over the cluster's pub/sub.
 */

const run = promisify(execFile);
const files = adminFiles();
const logs = captureLog();
const dir = mkdtempSync(join(tmpdir(), 'tg-redis-cluster-'));
const nodes: ChildProcess[] = [];
let h: PgHarness;
let b: RunningGateway;
const clients: Client[] = [];

async function pgConnect(g: RunningGateway, token: string): Promise<Client | { code?: string; message: string }> {
  const c = new Client({ host: '127.0.0.1', port: g.port, user: 'reader', database: 'app', password: token });
  c.on('error', () => undefined);
  clients.push(c);
  return c.connect().then(() => c, (e: { code?: string; message: string }) => e);
}

beforeAll(async () => {
  const ports: number[] = [];
  for (let i = 0; i < 3; i++) {
    const [port, bus] = [await freePort(), await freePort()];
    ports.push(port);
    nodes.push(await spawnRedis(port, ['--cluster-enabled', 'yes', '--cluster-port', String(bus), '--cluster-config-file', 'nodes.conf'], mkdtempSync(join(dir, 'n-'))));
  }
  await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
  await waitFor(async () => (await run('redis-cli', ['-p', String(ports[0]), 'cluster', 'info'])).stdout.includes('cluster_state:ok'), { what: 'the cluster to form', timeoutMs: 15_000, intervalMs: 100 });
  const yaml = `${files.yaml}redis:\n  nodes: [127.0.0.1:${ports[0]}]\n  keyPrefix: "tg-redis-cluster:"\nlimits:\n  maxConnectionsPerIdentity: 1\n`;
  h = await startGatewayHarness({ protocol: 'postgres', admin: true, extraYaml: yaml, core: { instanceId: 'c101' } });
  b = await h.startGateway({ admin: true, extraYaml: yaml, core: { instanceId: 'c102' } });
}, 60_000);
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await h?.stop();
  for (const n of nodes) await killChild(n);
  rmSync(dir, { recursive: true, force: true });
  logs.stop();
  files.cleanup();
});

test('revocations, caps and the session list across two instances on a Redis Cluster', async () => {
  expect((await call(h.gateway, 'GET', '/readyz')).body.checks.redis.ok).toBe(true);
  const sub = 'tg-redis-cluster-agent';
  const token = await h.token('svc-reporting', { claims: { sub } });
  const onB = await pgConnect(b, token) as Client;
  expect(onB).toBeInstanceOf(Client);
  // The identity's one place is taken on b: refused on h (the lease script ran on the cluster).
  expect((await pgConnect(h, token) as { code?: string }).code).toBe('53300');
  const listed = await call(h.gateway, 'GET', `/sessions?sub=${sub}`, { bearer: files.token });
  expect(listed.body.sessions).toEqual([expect.objectContaining({ instance: 'c102', sub })]);
  const ended = new Promise<{ code?: string }>((resolve) => onB.once('error', resolve as never));
  const started = Date.now();
  expect((await call(h.gateway, 'POST', '/revocations', { bearer: files.token, body: { sub } })).status).toBe(201);
  expect((await ended).code).toBe('57P01');
  expect(Date.now() - started).toBeLessThan(1000);
  expect((await pgConnect(b, token) as { code?: string }).code).toBe('28P01');
}, 30_000);
