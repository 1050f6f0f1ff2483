import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load';
import { checkRedis } from '../../src/core/state/redis/onlineCheck';
import { baseDoc, ENV, tempDir } from '../config/helpers';
import { freePort, killChild, spawnRedis } from '../helpers/redisServer';

/** check-config --online's Redis check: reached, refused credentials (a configuration error), nothing listening (unreachable). */

const PASSWORD = 'tg-redis-check-Pw91';
const redisConfig = (redis: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) =>
  parseConfig(stringify({ ...baseDoc(), redis: { connectTimeout: '1s', ...redis } }), 'test.yaml', { ...ENV, ...env }, tempDir()).redis!;

test('reached, refused and unreachable; the password never shown', async () => {
  const port = await freePort();
  const server = await spawnRedis(port, ['--requirepass', PASSWORD]);
  try {
    const ok = await checkRedis(redisConfig({ url: `redis://127.0.0.1:${port}`, password: '${TG_REDIS_PW}' }, { TG_REDIS_PW: PASSWORD }));
    expect(ok).toEqual({ name: 'redis', ok: true, detail: expect.stringMatching(/^connected to redis:\/\/127\.0\.0\.1:\d+\/? \(Redis \d/) });
    const wrong = await checkRedis(redisConfig({ url: `redis://127.0.0.1:${port}`, password: '${TG_REDIS_PW}' }, { TG_REDIS_PW: 'not-it' }));
    expect(wrong).toMatchObject({ ok: false, problem: 'configuration', detail: expect.stringMatching(/WRONGPASS|invalid/i) });
    expect(JSON.stringify([ok, wrong])).not.toContain(PASSWORD);
  } finally {
    await killChild(server);
  }
  const gone = await checkRedis(redisConfig({ url: `redis://127.0.0.1:${port}` }));
  expect(gone).toMatchObject({ ok: false, problem: 'unreachable' });
});
