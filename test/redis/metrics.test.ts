import { Registry } from 'prom-client';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load';
import { systemClock } from '../../src/core/clock';
import { instanceIdentity } from '../../src/core/instance';
import { RedisState } from '../../src/core/state/redis';
import { registerRedisMetrics } from '../../src/core/state/redis/metrics';
import { baseDoc, ENV, tempDir } from '../config/helpers';
import { waitFor } from '../helpers/waitFor';
import { startRedis, type RedisServer } from '../helpers/redisServer';

/** tokengate_redis_up, _disconnects_total and _lease_seconds against a real, then stopped, Redis. */

let redis: RedisServer;
let state: RedisState;

beforeAll(async () => {
  redis = await startRedis();
  const config = parseConfig(stringify({ ...baseDoc(), redis: { url: redis.url, keyPrefix: 'tg-redis-metrics:' } }), 'test.yaml', ENV, tempDir());
  state = new RedisState(config.redis!, instanceIdentity('7e57', Date.now()), systemClock);
  await state.start();
});
afterAll(async () => {
  await state?.close();
  await redis?.stop();
});

const value = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

test('the metrics follow Redis and the logins that asked it', async () => {
  const registry = new Registry();
  registerRedisMetrics(registry, state);
  let text = await registry.metrics();
  expect(value(text, 'tokengate_redis_up')).toBe(1);
  expect(value(text, 'tokengate_redis_disconnects_total')).toBe(0);

  const r = await state.state.leases.acquire([{ key: 'identity:tg-redis-metrics', limit: 5 }]);
  expect(r.ok).toBe(true);
  if (r.ok) r.lease.release();
  text = await registry.metrics();
  expect(value(text, 'tokengate_redis_lease_seconds_count')).toBe(1);

  await redis.kill();
  await waitFor(() => !state.link.available, { what: 'Redis gone' });
  text = await registry.metrics();
  expect(value(text, 'tokengate_redis_up')).toBe(0);
  expect(value(text, 'tokengate_redis_disconnects_total')).toBe(1);
  expect(() => state.state.leases.acquire([{ key: 'identity:tg-redis-metrics', limit: 5 }])).toThrow(/cannot reach its shared state/);
  await redis.restart();
  await waitFor(() => state.link.available, { what: 'Redis back', timeoutMs: 10_000 });
  expect(value(await registry.metrics(), 'tokengate_redis_up')).toBe(1);
});
