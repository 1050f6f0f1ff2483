/**
 * The names of tokengate's keys and channels under redis.keyPrefix. Every key carries the hash
 * tag `{state}`, so on a Redis Cluster they all live in one slot and a Lua script may touch
 * several at once (the state is small: a few keys per live session).
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** One revocation (JSON), with its lapse time as the key's TTL. */
  revocation(id: string): string {
    return `${this.prefix}{state}:revocation:${id}`;
  }

  /** Marks a revocation removed (until it would have lapsed), so an instance that missed the removal does not write it back. */
  removedRevocation(id: string): string {
    return `${this.prefix}{state}:revocation-removed:${id}`;
  }

  /** Sorted set: revocation id -> lapse time (ms; +inf for none), to read them all. */
  get revocations(): string {
    return `${this.prefix}{state}:revocations`;
  }

  /** Sorted set: lease member (instance:n) -> expiry (ms, Redis time), for one counted key (clients, identity:SUB, grant:NAME). */
  lease(key: string): string {
    return `${this.prefix}{state}:lease:${key}`;
  }

  /** Hash: instance key -> its announcement (JSON with an expiry). */
  get instances(): string {
    return `${this.prefix}{state}:instances`;
  }

  /** Pub/sub: revocations added and removed. */
  get revocationChannel(): string {
    return `${this.prefix}revocations`;
  }

  /** Pub/sub: requests every instance answers (session lists, session ends). */
  get broadcastChannel(): string {
    return `${this.prefix}bus`;
  }

  /** Pub/sub: messages for the instance(s) with this number (forwarded cancels and kills). */
  instanceChannel(n: number): string {
    return `${this.prefix}instance:${n}`;
  }

  /** Pub/sub: replies to the requests of one instance (by its key). */
  replyChannel(key: string): string {
    return `${this.prefix}reply:${key}`;
  }
}
