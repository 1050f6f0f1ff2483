import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { waitFor } from '../helpers/waitFor';
import { adminFiles, call, captureLog } from '../admin/adminClient';
import { startGatewayHarness, type PgHarness, type RunningGateway } from '../integration/harness';
import { freePort, killChild, spawnRedis } from '../helpers/redisServer';

/**
 * Redis Sentinel failover: a throwaway primary, replica and Sentinel (redis-server --sentinel:
 * the same binary Debian's redis-sentinel runs). Two gateways find the primary through the
 * Sentinel; the primary is killed; once the Sentinel promotes the replica they reconnect by
 * themselves, keep the revocations made before (replicated), and share new ones again.
 */

const files = adminFiles();
const logs = captureLog();
const dir = mkdtempSync(join(tmpdir(), 'tg-redis-sentinel-'));
let primary: ChildProcess;
let replicaPort: number;
let replica: ChildProcess;
let sentinel: ChildProcess;
let h: PgHarness;
let b: RunningGateway;
const clients: Client[] = [];

async function pgConnect(g: RunningGateway, token: string): Promise<Client | { code?: string; message: string }> {
  const c = new Client({ host: '127.0.0.1', port: g.port, user: 'reader', database: 'app', password: token });
  c.on('error', () => undefined);
  clients.push(c);
  return c.connect().then(() => c, (e: { code?: string; message: string }) => e);
}
const codeOf = (r: Client | { code?: string }): string | undefined => (r instanceof Client ? 'connected' : r.code);

beforeAll(async () => {
  const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
  primary = await spawnRedis(p1, [], mkdtempSync(join(dir, 'p-')));
  replicaPort = p2;
  replica = await spawnRedis(p2, ['--replicaof', '127.0.0.1', String(p1)], mkdtempSync(join(dir, 'r-')));
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(conf, [
    `port ${p3}`, 'bind 127.0.0.1', `dir ${dir}`,
    `sentinel monitor tg-redis 127.0.0.1 ${p1} 1`,
    'sentinel down-after-milliseconds tg-redis 800',
    'sentinel failover-timeout tg-redis 4000',
    '',
  ].join('\n'));
  sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const yaml = `${files.yaml}redis:\n  sentinels: [127.0.0.1:${p3}]\n  name: tg-redis\n  keyPrefix: "tg-redis-sentinel:"\n  leaseTtl: 3s\n  connectTimeout: 5s\n`;
  h = await startGatewayHarness({ protocol: 'postgres', admin: true, extraYaml: yaml, core: { instanceId: '5e01' } });
  b = await h.startGateway({ admin: true, extraYaml: yaml, core: { instanceId: '5e02' } });
}, 60_000);
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await h?.stop();
  for (const c of [sentinel, replica, primary]) if (c) await killChild(c);
  rmSync(dir, { recursive: true, force: true });
  logs.stop();
  files.cleanup();
});

test('the gateways follow a Sentinel failover and keep the shared revocations', async () => {
  const before = await h.token('svc-reporting', { claims: { sub: 'tg-redis-sentinel-old' } });
  expect((await call(h.gateway, 'POST', '/revocations', { bearer: files.token, body: { sub: 'tg-redis-sentinel-old' } })).status).toBe(201);
  await waitFor(async () => codeOf(await pgConnect(b, before)) === '28P01', { what: 'b knowing the revocation' });

  // Replicated before the primary goes (Redis replication is asynchronous: a write in the last moment can be lost, and is then written back by the instances).
  const onReplica = new Redis(replicaPort, '127.0.0.1');
  await waitFor(async () => (await onReplica.zcard('tg-redis-sentinel:{state}:revocations')) === 1, { what: 'the revocation on the replica' });
  onReplica.disconnect();
  await killChild(primary);
  const failedOver = Date.now();
  await waitFor(async () => codeOf(await pgConnect(h, await h.token())) === 'connected' && h.gateway.redis!.link.available && b.gateway.redis!.link.available
    && (await call(h.gateway, 'GET', '/readyz')).body.checks.redis.ok, { what: 'both gateways on the promoted replica', timeoutMs: 30_000, intervalMs: 250 });
  process.stdout.write(`sentinel failover: gateways serving with shared state again ${Date.now() - failedOver} ms after the primary was killed\n`);

  // The revocation made before the failover was replicated: still refused on both.
  for (const g of [h, b]) expect(codeOf(await pgConnect(g, before))).toBe('28P01');
  // Pub/sub works through the new primary: a revocation on b ends a session on h at once.
  const sub = 'tg-redis-sentinel-new';
  const live = await pgConnect(h, await h.token('svc-reporting', { claims: { sub } })) as Client;
  const ended = new Promise<{ code?: string }>((resolve) => live.once('error', resolve as never));
  expect((await call(b.gateway, 'POST', '/revocations', { bearer: files.token, body: { sub } })).status).toBe(201);
  expect((await ended).code).toBe('57P01');
}, 60_000);
