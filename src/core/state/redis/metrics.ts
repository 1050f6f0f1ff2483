import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { RedisState } from './index';

/**
 * The shared state's metrics, in the gateway's registry (GatewayMetrics.registry):
 * whether Redis is reachable, how often it was lost, and what a login's lease round trip costs.
 */
const ROUND_TRIP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

export function registerRedisMetrics(registry: Registry, redis: RedisState): void {
  const registers = [registry];
  new Gauge({
    name: 'tokengate_redis_up', help: 'Whether this instance can reach its shared state in Redis (1) or not (0: redis.onUnavailable applies).', registers,
    collect() {
      this.set(redis.link.available ? 1 : 0);
    },
  });
  new Counter({
    name: 'tokengate_redis_disconnects_total', help: 'Times this instance lost its Redis connection.', registers,
    collect() {
      this.reset();
      this.inc(redis.link.disconnects);
    },
  });
  const roundTrips = new Histogram({
    name: 'tokengate_redis_lease_seconds', help: 'A login\'s round trip to Redis for its connection leases (only when a cap is configured).',
    buckets: ROUND_TRIP_BUCKETS, registers,
  });
  redis.leases.onRoundTrip = (s) => roundTrips.observe(s);
}
