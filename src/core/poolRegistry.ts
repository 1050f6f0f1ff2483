import type { Config, Protocol, RoleConfig, UpstreamConfig } from '../config/schema';
import { systemClock, type Clock } from './clock';
import { upstreamFingerprint } from './fingerprint';
import type { Pool, PoolStats, UpstreamConnection } from './pool';

/** What a pool is for: the protocol's key parts (database, client capabilities...) come on top of the fingerprint. */
export interface PoolKey {
  protocol: Protocol;
  upstream: UpstreamConfig;
  role: RoleConfig;
  /** Protocol-specific parts of the key, e.g. [database] or [database, capabilities, collation]. */
  parts: readonly (string | number)[];
  /** The pool's name in messages and stats (made only when the pool is). */
  name: () => string;
}

interface Entry {
  pool: Pool<UpstreamConnection>;
  protocol: Protocol;
  upstream: string;
  role: string;
  /** The upstream database name (the first key part). */
  database: string;
  fingerprint: string;
  name: string;
}

/** A pool in service, named by config names (for metrics), with its counts now. */
export interface PoolSnapshot {
  name: string;
  protocol: Protocol;
  upstream: string;
  role: string;
  database: string;
  stats: PoolStats;
}

/**
 * Every upstream pool of both protocols, keyed by the fingerprint of the upstream's effective
 * settings and the protocol's key parts. A config change that alters an upstream yields new keys,
 * so new sessions get a fresh pool; `retireStale` takes the old pools out of service, and each
 * closes its connections as their sessions release them.
 */
export class PoolRegistry {
  readonly #entries = new Map<string, Entry>();
  /** The same config objects always name the same pool: a login finds it without building its key. */
  readonly #recent = new WeakMap<UpstreamConfig, WeakMap<RoleConfig, Map<string, Entry>>>();

  constructor(readonly clock: Clock = systemClock) {}

  /** The pool for `key`, made by `make` on first use. */
  get<T extends UpstreamConnection>(key: PoolKey, make: (clock: Clock) => Pool<T>): Pool<T> {
    const parts = key.parts.length === 1 ? String(key.parts[0]) : key.parts.join('\u0000');
    let byRole = this.#recent.get(key.upstream);
    if (!byRole) this.#recent.set(key.upstream, (byRole = new WeakMap()));
    let byParts = byRole.get(key.role);
    if (!byParts) byRole.set(key.role, (byParts = new Map()));
    const seen = byParts.get(parts);
    if (seen && !seen.pool.closed) return seen.pool as unknown as Pool<T>;

    const fingerprint = upstreamFingerprint(key.upstream, key.role);
    const id = `${key.protocol}\u0000${fingerprint}\u0000${key.role.name}\u0000${parts}`;
    let entry = this.#entries.get(id);
    if (!entry) {
      const pool = make(this.clock) as unknown as Pool<UpstreamConnection>;
      entry = { pool, protocol: key.protocol, upstream: key.upstream.name, role: key.role.name, database: String(key.parts[0] ?? ''), fingerprint, name: key.name() };
      this.#entries.set(id, entry);
    }
    byParts.set(parts, entry);
    return entry.pool as unknown as Pool<T>;
  }

  /**
   * Takes out of service every pool whose upstream or role is gone from `config` or now has
   * other effective settings. Returns the names of the pools retired; each closes its idle
   * connections now and the others when released.
   */
  retireStale(config: Config): string[] {
    const retired: string[] = [];
    for (const [id, e] of this.#entries) {
      const upstream = config.upstreams[e.upstream];
      const role = upstream && Object.prototype.hasOwnProperty.call(upstream.roles, e.role) ? upstream.roles[e.role] : undefined;
      if (upstream && role && upstream.protocol === e.protocol && upstreamFingerprint(upstream, role) === e.fingerprint) continue;
      this.#entries.delete(id);
      retired.push(e.name);
      void e.pool.close();
    }
    return retired;
  }

  /** Pool statistics by pool name (optionally of one protocol). */
  stats(protocol?: Protocol): Record<string, PoolStats> {
    const out: Record<string, PoolStats> = {};
    for (const e of this.#entries.values()) if (!protocol || e.protocol === protocol) out[e.name] = e.pool.stats();
    return out;
  }

  /** Every pool in service with its counts (pools retired by a reload are no longer listed). */
  snapshot(): PoolSnapshot[] {
    const out: PoolSnapshot[] = [];
    for (const e of this.#entries.values()) {
      out.push({ name: e.name, protocol: e.protocol, upstream: e.upstream, role: e.role, database: e.database, stats: e.pool.stats() });
    }
    return out;
  }

  /** Closes the pools (of one protocol, or all) and forgets them. */
  async closeAll(protocol?: Protocol): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [id, e] of this.#entries) {
      if (protocol && e.protocol !== protocol) continue;
      this.#entries.delete(id);
      closing.push(e.pool.close());
    }
    await Promise.all(closing);
  }
}
