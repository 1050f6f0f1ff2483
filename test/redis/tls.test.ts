import { chmodSync } from 'node:fs';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load';
import { systemClock } from '../../src/core/clock';
import { instanceIdentity } from '../../src/core/instance';
import { RedisState } from '../../src/core/state/redis';
import { checkRedis } from '../../src/core/state/redis/onlineCheck';
import { baseDoc, ENV, tempDir } from '../config/helpers';
import { makeTestCertificates } from '../helpers/tlsCert';
import { freePort, killChild, spawnRedis } from '../helpers/redisServer';

/** rediss:// with redis.caFile against a redis-server that speaks only TLS; a wrong CA is refused. */

test('TLS to Redis: verified with caFile; another CA fails the check', async () => {
  const certs = makeTestCertificates();
  const other = makeTestCertificates();
  chmodSync(certs.keyFile, 0o644); // redis-server reads it as this user
  const port = await freePort();
  const server = await spawnRedis(0, ['--tls-port', String(port), '--tls-cert-file', certs.certFile, '--tls-key-file', certs.keyFile,
    '--tls-ca-cert-file', certs.caFile, '--tls-auth-clients', 'no'], undefined, port);
  const config = (caFile: string) => parseConfig(stringify({ ...baseDoc(), redis: { url: `rediss://localhost:${port}`, caFile, keyPrefix: 'tg-redis-tls:', connectTimeout: '2s' } }), 'test.yaml', ENV, tempDir()).redis!;
  try {
    const state = new RedisState(config(certs.caFile), instanceIdentity('7155', Date.now()), systemClock);
    await state.start();
    expect(state.check()).toMatchObject({ ok: true });
    const r = await Promise.resolve(state.state.leases.acquire([{ key: 'identity:tg-redis-tls', limit: 1 }]));
    expect(r.ok).toBe(true);
    await state.close();
    const refused = await checkRedis(config(other.caFile));
    expect(refused).toMatchObject({ ok: false, problem: 'configuration', detail: expect.stringMatching(/certificate/i) });
  } finally {
    await killChild(server);
    certs.cleanup();
    other.cleanup();
  }
});
