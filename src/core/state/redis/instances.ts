import { troubleLog } from '../../../throttledLog';
import type { InstanceIdentity } from '../../instance';
import type { RedisKeys } from './keys';
import type { RedisLink } from './link';

/**
 * The live instances, as each announces itself on every heartbeat (a Redis hash: id -> JSON
 * with an expiry). A request to every instance (the session list) knows from it how many
 * answers to wait for; an instance that stopped announcing itself drops out after leaseTtl.
 */
export interface InstanceAnnouncement extends InstanceIdentity {
  expiresAt: number;
}

export class InstanceRegistry {
  /** The other instances at the last look, for naming those that cannot be asked while Redis is away. */
  #lastSeen: string[] = [];

  constructor(private readonly link: RedisLink, private readonly keys: RedisKeys, private readonly self: InstanceIdentity, private readonly ttlMs: number) {}

  async announce(now: number): Promise<void> {
    const a: InstanceAnnouncement = { ...this.self, expiresAt: now + this.ttlMs };
    await this.link.client.hset(this.keys.instances, this.self.key, JSON.stringify(a));
  }

  /** The other live instances; entries that expired long ago are removed. */
  async others(now: number): Promise<InstanceAnnouncement[]> {
    const all = await this.link.client.hgetall(this.keys.instances);
    const live: InstanceAnnouncement[] = [];
    const stale: string[] = [];
    for (const [id, text] of Object.entries(all)) {
      let a: InstanceAnnouncement;
      try {
        a = JSON.parse(text) as InstanceAnnouncement;
      } catch {
        stale.push(id);
        continue;
      }
      if (a.expiresAt > now) {
        if (id !== this.self.key) live.push(a);
        if (id !== this.self.key && a.id === this.self.id) {
          troubleLog.report('error', `redis:duplicate-instance:${this.self.id}`,
            `two live tokengate instances share the instance id ${a.id} (this one, pid ${this.self.pid} on ${this.self.host}, and pid ${a.pid} on ${a.host}): GET /sessions cannot tell their sessions apart; give each process its own instanceId`);
        }
      } else if (a.expiresAt + this.ttlMs < now) stale.push(id);
    }
    if (stale.length) await this.link.client.hdel(this.keys.instances, ...stale);
    this.#lastSeen = live.map((a) => a.id);
    return live;
  }

  get lastSeen(): string[] {
    return this.#lastSeen;
  }

  async leave(): Promise<void> {
    await this.link.client.hdel(this.keys.instances, this.self.key);
  }
}
