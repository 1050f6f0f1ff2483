import { Client } from 'pg';
import { startGatewayHarness, type PgHarness, type RunningGateway } from '../integration/harness';
import { startRedis, type RedisServer } from '../helpers/redisServer';

/**
 * What Redis adds to a login: the same PostgreSQL login (node-postgres connect + end) through a
 * gateway without Redis and through one whose caps are held in Redis (one EVALSHA round trip
 * for the leases; the revocation check reads the in-process mirror). Reported, not asserted:
 * the machine is shared, so the figures are for docs/operations.md, not a threshold.
 */

let redis: RedisServer;
let h: PgHarness;
let shared: RunningGateway;

beforeAll(async () => {
  redis = await startRedis();
  h = await startGatewayHarness({ protocol: 'postgres', extraYaml: 'limits:\n  maxConnectionsPerIdentity: 50\n' });
  shared = await h.startGateway({ extraYaml: `limits:\n  maxConnectionsPerIdentity: 50\nredis:\n  url: ${redis.url}\n  keyPrefix: "tg-redis-latency:"\n` });
}, 60_000);
afterAll(async () => {
  await h?.stop();
  await redis?.stop();
});

async function login(g: RunningGateway, token: string): Promise<number> {
  const started = process.hrtime.bigint();
  const c = new Client({ host: '127.0.0.1', port: g.port, user: 'reader', database: 'app', password: token });
  await c.connect();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  await c.end();
  return ms;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

test('a login with the caps in Redis against one with in-process caps', async () => {
  const token = await h.token();
  for (let i = 0; i < 5; i++) await Promise.all([login(h, token), login(shared, token)]); // warm the pools and the token cache
  const local: number[] = [];
  const viaRedis: number[] = [];
  for (let i = 0; i < 60; i++) {
    local.push(await login(h, token));
    viaRedis.push(await login(shared, token));
  }
  const [a, b] = [median(local), median(viaRedis)];
  process.stdout.write(`login median over 60: in-process ${a.toFixed(2)} ms, Redis-backed ${b.toFixed(2)} ms, difference ${(b - a).toFixed(2)} ms\n`);
  expect(local).toHaveLength(60);
  expect(viaRedis).toHaveLength(60);
}, 60_000);
