import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load';
import { log } from '../../src/log';
import { systemClock } from '../../src/core/clock';
import { instanceIdentity } from '../../src/core/instance';
import { RedisState } from '../../src/core/state/redis';
import type { LeaseResult } from '../../src/core/state';
import { baseDoc, ENV, tempDir } from '../config/helpers';
import { waitFor } from '../helpers/waitFor';
import { startRedis, type RedisServer } from '../helpers/redisServer';

/** Leases on a real Redis from two instances: atomic under concurrency, renewed while held, released, lapsing when not renewed. */

let redis: RedisServer;
const states: RedisState[] = [];

async function instance(id: string): Promise<RedisState> {
  const config = parseConfig(stringify({ ...baseDoc(), redis: { url: redis.url, keyPrefix: 'tg-redis-leases:', leaseTtl: '1s' } }), 'test.yaml', ENV, tempDir());
  const s = new RedisState(config.redis!, instanceIdentity(id, Date.now()), systemClock);
  await s.start();
  states.push(s);
  return s;
}

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const s of states) await s.close();
  await redis?.stop();
});

const acquire = (s: RedisState, key: string, limit: number): Promise<LeaseResult> => Promise.resolve(s.state.leases.acquire([{ key, limit }]));

test('concurrent logins on two instances never exceed a cap; releases free places; held leases outlive leaseTtl', async () => {
  const [a, b] = [await instance('1ea1'), await instance('1ea2')];
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => acquire(i % 2 ? a : b, 'grant:tg-redis-leases', 5)));
  const won = results.filter((r) => r.ok);
  expect(won).toHaveLength(5);
  expect(results.find((r) => !r.ok)).toMatchObject({ ok: false, key: 'grant:tg-redis-leases', limit: 5, count: 5 });
  // Held across several leaseTtls (renewed by the heartbeat), the cap stays full: the passing time itself is what is tested.
  await new Promise((r) => setTimeout(r, 2500));
  expect((await acquire(a, 'grant:tg-redis-leases', 5)).ok).toBe(false);
  for (const r of won) if (r.ok) r.lease.release();
  await waitFor(async () => (await acquire(b, 'grant:tg-redis-leases', 5)).ok, { what: 'a released place' });
}, 15_000);

test('leases of an instance that stops renewing lapse after leaseTtl', async () => {
  const [a, b] = [await instance('1eb1'), await instance('1eb2')];
  expect((await acquire(a, 'identity:tg-redis-crash', 1)).ok).toBe(true);
  expect((await acquire(b, 'identity:tg-redis-crash', 1)).ok).toBe(false);
  a.abort();
  const t0 = Date.now();
  await waitFor(async () => (await acquire(b, 'identity:tg-redis-crash', 1)).ok, { what: 'the lapsed lease', timeoutMs: 5000, intervalMs: 100 });
  expect(Date.now() - t0).toBeGreaterThan(300);
});

test('two instances given the same id by mistake keep their leases apart, and the log says so', async () => {
  const errors = jest.spyOn(log, 'error');
  const [a, b] = [await instance('1ec1'), await instance('1ec1')];
  for (const s of [a, b]) expect((await acquire(s, 'identity:tg-redis-dup', 2)).ok).toBe(true);
  expect((await acquire(a, 'identity:tg-redis-dup', 2)).ok).toBe(false);
  await waitFor(() => errors.mock.calls.some((c) => String(c[0]).includes('two live tokengate instances share the instance id 1ec1')), { what: 'the duplicate reported' });
  errors.mockRestore();
});
