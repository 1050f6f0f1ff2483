import { hash } from 'node:crypto';

/** The cache key for a token: its SHA-256, so the cache never holds the token itself. */
export function tokenDigest(token: string): string {
  return hash('sha256', token, 'hex'); // one-shot: no Hash object per connection
}

interface Entry<V> {
  value: V;
  /** ms since the epoch after which the entry must not be served. */
  validUntil: number;
}

/**
 * Verified tokens by digest, so N connections with one token cost one signature check.
 * Bounded (least-recently-used entry evicted first); an entry is served only while
 * `now < validUntil`, so expiry is re-checked on every hit.
 */
export class TokenCache<V> {
  readonly #entries = new Map<string, Entry<V>>();

  constructor(readonly maxEntries = 10_000) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError(`TokenCache maxEntries must be a positive integer, got ${maxEntries}`);
  }

  get size(): number {
    return this.#entries.size;
  }

  get(digest: string, nowMs: number): V | undefined {
    const entry = this.#entries.get(digest);
    if (!entry) return undefined;
    this.#entries.delete(digest);
    if (nowMs >= entry.validUntil) return undefined;
    this.#entries.set(digest, entry); // most recently used goes last
    return entry.value;
  }

  set(digest: string, value: V, validUntil: number): void {
    this.#entries.delete(digest);
    this.#entries.set(digest, { value, validUntil });
    while (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  clear(): void {
    this.#entries.clear();
  }
}
