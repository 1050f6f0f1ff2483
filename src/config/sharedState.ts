import type { Config } from './schema';

/**
 * For check-config and start: several instances of one gateway (workers > 1) must share their
 * state, or a revocation, a cap or a cancel would reach only the instance it happened to hit.
 * Returns the problem to report, or undefined when the config is fine.
 */
export function sharedStateProblem(config: Pick<Config, 'redis'>, instances: number): string | undefined {
  if (instances <= 1 || config.redis) return undefined;
  return `${instances} worker processes need shared state: add a redis: section (url, or sentinels + name, or nodes) so that revocations, connection limits, cancel requests and the session list reach every worker; or set workers: 1`;
}
