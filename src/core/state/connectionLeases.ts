/**
 * Connection counts under caps (all clients, one identity, one grant). A session holds a lease
 * for each key it counts under and gives them back when it ends; shared implementations give
 * leases a time to live, so a crashed process's counts expire by themselves.
 */
export interface LeaseRequest {
  key: string;
  /** The most connections this key may hold; Infinity for no cap. */
  limit: number;
}

export interface Lease {
  /** Gives the counts back; idempotent. */
  release(): void;
}

export type LeaseResult =
  | { ok: true; lease: Lease }
  /** The first key at its cap, and its count. */
  | { ok: false; key: string; limit: number; count: number };

export interface ConnectionLeases {
  /**
   * All the requested counts, or none of them. In-process leases answer at once; shared ones
   * answer with a promise (one round trip to the shared store) when a requested key has a cap,
   * and reject with SharedStateUnavailableError when the store cannot be asked and new
   * connections must be refused (redis.onUnavailable: fail-closed).
   */
  acquire(requests: readonly LeaseRequest[]): LeaseResult | Promise<LeaseResult>;
  count(key: string): number;
}

/** The shared store cannot be asked and new connections are refused; the message is for the agent. */
export class SharedStateUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SharedStateUnavailableError';
  }
}

export class InProcessConnectionLeases implements ConnectionLeases {
  readonly #counts = new Map<string, number>();

  acquire(requests: readonly LeaseRequest[]): LeaseResult {
    for (const r of requests) {
      const count = this.count(r.key);
      if (count >= r.limit) return { ok: false, key: r.key, limit: r.limit, count };
    }
    for (const r of requests) this.#counts.set(r.key, this.count(r.key) + 1);
    let released = false;
    return {
      ok: true,
      lease: {
        release: () => {
          if (released) return;
          released = true;
          for (const r of requests) {
            const n = this.count(r.key) - 1;
            if (n > 0) this.#counts.set(r.key, n);
            else this.#counts.delete(r.key);
          }
        },
      },
    };
  }

  count(key: string): number {
    return this.#counts.get(key) ?? 0;
  }
}
