import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError, parseConfig } from '../../src/config/load';
import { sharedStateProblem } from '../../src/config/sharedState';
import { baseDoc, ENV, tempDir } from '../config/helpers';

/** The redis: section: one of url / sentinels + name / nodes, secrets by ${ENV} or file, defaults. */

const REDIS_PASSWORD = 'redis-s3cret-Yv42%';

function load(redis: unknown, env: NodeJS.ProcessEnv = {}, dir = tempDir()) {
  return parseConfig(stringify({ ...baseDoc(), redis }), 'test.yaml', { ...ENV, ...env }, dir);
}

function problems(redis: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    load(redis, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}

test('a URL with the defaults', () => {
  const c = load({ url: 'redis://10.0.0.5:6379/2' }).redis!;
  expect(c).toMatchObject({
    url: 'redis://10.0.0.5:6379/2', keyPrefix: 'tokengate:', onUnavailable: 'fail-closed', tls: false,
    connectTimeoutMs: 5000, commandTimeoutMs: 1000, leaseTtlMs: 30_000, password: undefined,
  });
  expect(load({ url: 'rediss://r.internal:6380' }).redis!.tls).toBe(true);
});

test('Sentinel and Cluster addresses; the password from the environment or a file, never shown', () => {
  const s = load({ sentinels: ['10.0.0.1:26379', '[::1]:26380'], name: 'tg', password: '${REDIS_PASSWORD}' }, { REDIS_PASSWORD }).redis!;
  expect(s.sentinels).toEqual([{ host: '10.0.0.1', port: 26379 }, { host: '::1', port: 26380 }]);
  expect(s.password!.reveal()).toBe(REDIS_PASSWORD);
  expect(JSON.stringify(s)).not.toContain(REDIS_PASSWORD);
  const dir = tempDir();
  writeFileSync(join(dir, 'redis-pw'), `${REDIS_PASSWORD}\n`, { mode: 0o600 });
  const n = load({ nodes: ['10.0.0.21:6379'], passwordFile: 'redis-pw' }, {}, dir).redis!;
  expect(n.nodes).toEqual([{ host: '10.0.0.21', port: 6379 }]);
  expect(n.password!.reveal()).toBe(REDIS_PASSWORD);
});

test('mistakes are reported at their key, and an inline password is not echoed', () => {
  expect(problems({})).toEqual(['redis: needs one of url (one server), sentinels + name (Sentinel) or nodes (Cluster)']);
  expect(problems({ url: 'redis://a:6379', nodes: ['b:6379'] })).toEqual(['redis: set only one of url, nodes']);
  expect(problems({ sentinels: ['a:26379'] })).toEqual(['redis.name: is required with sentinels: the name of the monitored primary']);
  expect(problems({ url: 'http://a:6379' })).toEqual(['redis.url: expected a redis:// or rediss:// URL, got http://...']);
  expect(problems({ url: 'redis://a:6379', tls: true })).toEqual(['redis.tls: a redis:// URL is plaintext: write rediss:// for TLS']);
  expect(problems({ nodes: ['just-a-host'] })[0]).toMatch(/^redis\.nodes\[0\]: expected "host:port"/);
  const inline = problems({ url: `redis://:${REDIS_PASSWORD}@a:6379` });
  expect(inline).toEqual(['redis.url: the URL holds a password (not shown): remove it and use redis.password: ${ENV_VAR} or redis.passwordFile']);
  const typed = problems({ url: 'redis://a:6379', password: REDIS_PASSWORD });
  expect(typed[0]).toMatch(/^redis\.password: inline passwords are not accepted/);
  expect(typed.join('\n')).not.toContain(REDIS_PASSWORD);
  expect(problems({ url: 'redis://a:6379', password: '${NOPE_UNSET}' })).toEqual([expect.stringMatching(/^redis\.password: environment variable NOPE_UNSET is not set/)]);
  expect(problems({ url: 'redis://a:6379', onUnavailable: 'maybe' })[0]).toMatch(/^redis\.onUnavailable:/);
});

test('several workers need a redis: section', () => {
  expect(sharedStateProblem({ redis: undefined }, 1)).toBeUndefined();
  expect(sharedStateProblem({ redis: undefined }, 2)).toMatch(/^2 worker processes need shared state: add a redis: section/);
  expect(sharedStateProblem(load({ url: 'redis://a:6379' }), 4)).toBeUndefined();
});
