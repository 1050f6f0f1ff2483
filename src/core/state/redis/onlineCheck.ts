import type { RedisConfig } from '../../../config/schema';
import { RedisLink } from './link';

/** `check-config --online` and `start`: can the shared state be reached with this config? */
export interface RedisCheckResult {
  name: string;
  ok: boolean;
  problem?: 'configuration' | 'unreachable';
  detail: string;
}

/** Redis refused the credentials, the ACL user may not run a command, or its certificate does not verify with the configured CA: retrying will not help. */
const REFUSED = /WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username|certificate|altnames/i;

export async function checkRedis(config: RedisConfig): Promise<RedisCheckResult> {
  const link = new RedisLink(config);
  // Only the outcome is wanted here: the link's own error logging is for a running gateway.
  const errors: string[] = [];
  link.client.on('error', (err: Error) => errors.push(err.message));
  link.subscriber.disconnect();
  try {
    const ready = await Promise.race([
      link.client.connect().then(() => true, (err: Error) => (errors.push(err.message), false)),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), config.connectTimeoutMs).unref()),
    ]);
    if (!ready) {
      const cause = errors.find((e) => REFUSED.test(e)) ?? errors.find((e) => !/Connection is closed/.test(e)) ?? errors.at(-1) ?? `no answer within redis.connectTimeout (${config.connectTimeoutMs} ms)`;
      return { name: 'redis', ok: false, problem: REFUSED.test(cause) ? 'configuration' : 'unreachable', detail: `${link.where}: ${cause}` };
    }
    const info = await link.client.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1];
    return { name: 'redis', ok: true, detail: `connected to ${link.where}${version ? ` (Redis ${version})` : ''}` };
  } catch (err) {
    const msg = (err as Error).message;
    return { name: 'redis', ok: false, problem: REFUSED.test(msg) ? 'configuration' : 'unreachable', detail: `${link.where}: ${msg}` };
  } finally {
    link.abort();
  }
}
