import { troubleLog } from '../../../throttledLog';
import { InProcessConnectionLeases, SharedStateUnavailableError, type ConnectionLeases, type Lease, type LeaseRequest, type LeaseResult } from '../connectionLeases';
import type { RedisKeys } from './keys';
import type { RedisLink } from './link';

/**
 * Connection caps held across every instance. Each counted key (clients, identity:SUB,
 * grant:NAME) is a sorted set in Redis whose members are the leases of live sessions, scored
 * by their expiry in Redis's own clock; a Lua script drops the expired ones, checks every cap
 * and adds the lease to every key in one atomic step. This instance renews its leases on every
 * heartbeat, so the counts of an instance that crashed or lost Redis expire after leaseTtl.
 *
 * A login asks Redis only when one of its keys has a cap; uncapped keys are counted here and
 * put into Redis by the next heartbeat (so a cap added by a reload sees them). While Redis is
 * unreachable: fail-closed refuses the login; fail-open counts against this instance's own
 * sessions only, and the heartbeat puts those leases into Redis once it is back.
 */

const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[i + 2])
  if limit >= 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    local n = redis.call('ZCARD', key)
    if n >= limit then return {i, n} end
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[1])
  redis.call('PEXPIRE', key, ttl)
end
return {0, 0}
`;

/** KEYS[i] gets member ARGV[i + 1] renewed (or put back) for ARGV[1] ms. */
const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
`;

/** Renewals per script call: bounded so that one call does not hold Redis long. */
const RENEW_BATCH = 500;

interface LeaseScripts {
  tgAcquire(...args: (string | number)[]): Promise<[number, number]>;
  tgRenew(...args: (string | number)[]): Promise<number>;
}

interface Held {
  keys: string[];
}

export class RedisConnectionLeases implements ConnectionLeases {
  /** This instance's own counts: fail-open checks against them. */
  readonly #local = new InProcessConnectionLeases();
  /** Every lease this instance holds, by member name. */
  readonly #held = new Map<string, Held>();
  #next = 0;
  /** Called with each login's lease round trip to Redis, in seconds (for metrics). */
  onRoundTrip?: (seconds: number) => void;

  constructor(
    private readonly link: RedisLink,
    private readonly keys: RedisKeys,
    private readonly instanceId: string,
    private readonly o: { ttlMs: number; failOpen: boolean },
  ) {
    // EVALSHA, falling back to EVAL once after a Redis restart emptied its script cache.
    link.client.defineCommand('tgAcquire', { lua: ACQUIRE });
    link.client.defineCommand('tgRenew', { lua: RENEW });
  }

  acquire(requests: readonly LeaseRequest[]): LeaseResult | Promise<LeaseResult> {
    const capped = requests.some((r) => Number.isFinite(r.limit));
    if (!capped) return this.#takeLocal(requests);
    if (!this.link.available) return this.#unavailable(requests, this.link.failure);
    return this.#takeShared(requests);
  }

  /** This instance's count of `key` (the cluster-wide one is in Redis). */
  count(key: string): number {
    return this.#local.count(key);
  }

  /** Renews every lease this instance holds (and puts back any Redis lost). */
  async renew(): Promise<void> {
    if (!this.link.available || this.#held.size === 0) return;
    const pairs: [string, string][] = [];
    for (const [member, h] of this.#held) for (const key of h.keys) pairs.push([this.keys.lease(key), member]);
    try {
      for (let i = 0; i < pairs.length; i += RENEW_BATCH) {
        const batch = pairs.slice(i, i + RENEW_BATCH);
        await this.#scripts.tgRenew(batch.length, ...batch.map(([k]) => k), this.o.ttlMs, ...batch.map(([, m]) => m));
      }
    } finally {
      // A lease released while the renewal was on its way may have been put back by it: take it out again.
      const gone = pairs.filter(([, m]) => !this.#held.has(m));
      if (gone.length && this.link.available) {
        const m = this.link.client.multi();
        for (const [key, member] of gone) m.zrem(key, member);
        await m.exec().catch(() => undefined);
      }
    }
  }

  get #scripts(): LeaseScripts {
    return this.link.client as unknown as LeaseScripts;
  }

  async #takeShared(requests: readonly LeaseRequest[]): Promise<LeaseResult> {
    const member = `${this.instanceId}:${++this.#next}`;
    let answer: [number, number];
    const started = performance.now();
    try {
      answer = await this.#scripts.tgAcquire(requests.length, ...requests.map((r) => this.keys.lease(r.key)), member, this.o.ttlMs,
        ...requests.map((r) => (Number.isFinite(r.limit) ? r.limit : -1)));
    } catch (err) {
      return this.#unavailable(requests, `the Redis command failed: ${(err as Error).message}`);
    }
    this.onRoundTrip?.((performance.now() - started) / 1000);
    const [full, count] = answer.map(Number);
    if (full > 0) {
      const r = requests[full - 1];
      return { ok: false, key: r.key, limit: r.limit, count };
    }
    // Already counted in Redis: counted here without a cap.
    const local = this.#local.acquire(requests.map((r) => ({ key: r.key, limit: Infinity })));
    return { ok: true, lease: this.#hold(member, requests, local.ok ? local.lease : undefined) };
  }

  #takeLocal(requests: readonly LeaseRequest[]): LeaseResult {
    const r = this.#local.acquire(requests);
    if (!r.ok) return r;
    return { ok: true, lease: this.#hold(`${this.instanceId}:${++this.#next}`, requests, r.lease) };
  }

  #unavailable(requests: readonly LeaseRequest[], why: string): LeaseResult {
    if (!this.o.failOpen) {
      throw new SharedStateUnavailableError('tokengate cannot reach its shared state (Redis) to count connections against the configured limits, so it accepts no new sessions for now; retry in a moment, and if it persists tell the operator');
    }
    troubleLog.report('warn', 'redis:leases-fail-open', `${why}; redis.onUnavailable is fail-open: connection limits count only this instance's sessions until Redis is back`);
    return this.#takeLocal(requests);
  }

  #hold(member: string, requests: readonly LeaseRequest[], local: Lease | undefined): Lease {
    const keys = requests.map((r) => r.key);
    this.#held.set(member, { keys });
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        local?.release();
        this.#held.delete(member);
        if (!this.link.available) return; // expires by its TTL
        const m = this.link.client.multi();
        for (const key of keys) m.zrem(this.keys.lease(key), member);
        m.exec().catch(() => undefined);
      },
    };
  }
}
