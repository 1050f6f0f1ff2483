import { log } from '../../../log';
import { troubleLog } from '../../../throttledLog';
import type { Clock } from '../../clock';
import { InProcessRevocations, type NewRevocation, type Revocation } from '../revocations';
import type { RedisKeys } from './keys';
import type { RedisLink } from './link';

/**
 * Revocations shared by every instance through Redis, with a mirror in this process: the
 * login path's blocking() check stays a synchronous look at memory. A revocation made here
 * applies here at once (its sessions end before the API answers), is written to Redis with its
 * lapse time as the key's TTL, and announced on pub/sub; the other instances add it to their
 * mirror and end their matching sessions. The whole set is read again after every reconnect
 * and on every heartbeat, so a missed message is not a missed revocation. A change made while
 * Redis is away applies here and is written once Redis is back.
 */

interface Announcement {
  from: string;
  added?: StoredRevocation;
  removed?: string;
}

/** A revocation as stored (JSON-safe: no undefined fields). */
type StoredRevocation = Revocation;

/** How long a removal is remembered: longer than any instance can be away without a resync. */
const REMOVAL_MEMORY_MS = 7 * 24 * 3600 * 1000;

export class RedisRevocations extends InProcessRevocations {
  /** Changes made here not yet in Redis: id -> the revocation added, or null when removed. */
  readonly #unwritten = new Map<string, Revocation | null>();
  #flushing?: Promise<void>;

  constructor(private readonly link: RedisLink, private readonly keys: RedisKeys, private readonly instanceId: string, private readonly clock: Clock) {
    super();
  }

  override add(input: NewRevocation, now: number, maxTokenLifetimeMs?: number): Revocation {
    const r = super.add(input, now, maxTokenLifetimeMs);
    this.#unwritten.set(r.id, r);
    void this.flush();
    return r;
  }

  override remove(id: string): Revocation | undefined {
    const r = super.remove(id);
    if (r) {
      this.#unwritten.set(id, null);
      void this.flush();
    }
    return r;
  }

  /** Writes the changes made here that Redis does not have yet (each with its announcement). */
  flush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    for (const [id, r] of [...this.#unwritten]) {
      if (!this.link.available) break;
      try {
        const m = this.link.client.multi();
        if (r) {
          const ttl = r.expiresAt === undefined ? undefined : r.expiresAt - this.clock.now();
          if (ttl !== undefined && ttl <= 0) {
            this.#unwritten.delete(id);
            continue;
          }
          if (ttl === undefined) m.set(this.keys.revocation(id), JSON.stringify(r));
          else m.set(this.keys.revocation(id), JSON.stringify(r), 'PX', ttl);
          m.zadd(this.keys.revocations, r.expiresAt ?? '+inf', id);
          m.publish(this.keys.revocationChannel, JSON.stringify({ from: this.instanceId, added: r } satisfies Announcement));
        } else {
          m.set(this.keys.removedRevocation(id), '1', 'PX', REMOVAL_MEMORY_MS);
          m.del(this.keys.revocation(id));
          m.zrem(this.keys.revocations, id);
          m.publish(this.keys.revocationChannel, JSON.stringify({ from: this.instanceId, removed: id } satisfies Announcement));
        }
        await m.exec();
        if (this.#unwritten.get(id) === r) this.#unwritten.delete(id);
      } catch (err) {
        troubleLog.report('error', 'redis:revocation-write',
          `cannot write revocation ${id} to Redis (${(err as Error).message}): it applies on this instance now and is written when Redis is back; other instances do not know it yet`);
        break;
      }
    }
  }

  /** An announcement from another instance. */
  receive(text: string): void {
    let a: Announcement;
    try {
      a = JSON.parse(text) as Announcement;
    } catch {
      return;
    }
    if (a.from === this.instanceId) return;
    if (a.added) this.#learn(a.added);
    if (a.removed !== undefined) this.#forget(a.removed);
  }

  /**
   * Reads every revocation in Redis and makes the mirror equal to it (after writing this
   * instance's unwritten changes): new ones end their sessions here as announced ones do.
   */
  async resync(): Promise<void> {
    await this.flush();
    if (!this.link.available || this.#unwritten.size > 0) return;
    const now = this.clock.now();
    const c = this.link.client;
    await c.zremrangebyscore(this.keys.revocations, '-inf', String(now));
    const ids = await c.zrange(this.keys.revocations, '0', '-1');
    const values = ids.length ? await c.mget(ids.map((id) => this.keys.revocation(id))) : [];
    const inRedis = new Map<string, Revocation>();
    values.forEach((v, i) => {
      if (v === null) return; // lapsed by its TTL a moment ago
      try {
        inRedis.set(ids[i], JSON.parse(v) as Revocation);
      } catch {
        log.warn(`Redis holds an unreadable revocation ${ids[i]} (${this.keys.revocation(ids[i])}); it is ignored`);
      }
    });
    for (const r of inRedis.values()) this.#learn(r);
    const missing = this.list(now).filter((r) => !inRedis.has(r.id) && !this.#unwritten.has(r.id));
    if (missing.length === 0) return;
    // Not in Redis: removed elsewhere (a marker says so), or lost by Redis (restarted without
    // persistence, failed over before replication): then it is written back, as failing closed.
    const removed = await c.mget(missing.map((r) => this.keys.removedRevocation(r.id)));
    const lost: string[] = [];
    missing.forEach((r, i) => {
      if (removed[i] !== null) this.#forget(r.id);
      else {
        this.#unwritten.set(r.id, r);
        lost.push(r.id);
      }
    });
    if (lost.length) {
      log.warn(`Redis no longer holds revocation(s) ${lost.join(', ')} that this instance knows (was Redis restarted without persistence?); writing them back`);
      await this.flush();
    }
  }

  #learn(r: Revocation): void {
    if (this.list(this.clock.now()).some((known) => known.id === r.id)) return;
    const copy: Revocation = { ...r };
    this.restore(copy);
    this.emit('added', copy);
  }

  #forget(id: string): void {
    super.remove(id);
  }
}
