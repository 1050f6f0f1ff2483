import crypto from 'node:crypto';

/** A session that `KILL` can reach. */
export interface KillTarget {
  /** The verified token's `sub`, once the session is authenticated. */
  readonly owner: string | undefined;
  /** The upstream thread id of the session's current upstream connection, if it has one. */
  readonly upstreamThreadId: number | undefined;
  /** Interrupt the statement running upstream (KILL QUERY). */
  killQuery(): Promise<void>;
  /** End the session (KILL CONNECTION). */
  killConnection(): void;
}

/**
 * Ids drawn from [2^30, 2^31): far above the small, sequential thread ids MySQL/MariaDB
 * hand out, so a gateway id relayed by mistake cannot name a real upstream thread, and
 * still below 2^31 for drivers that read the id as a signed int.
 */
const ID_MIN = 0x40000000;
const ID_MAX = 0x80000000;

/**
 * Gateway-issued MySQL connection ids (the id in the greeting, which drivers show as the
 * thread id and the mariadb CLI sends in `KILL QUERY <id>` on Ctrl-C). A KILL is honoured
 * only for a session of the same `sub`; any other id is "unknown", so ids of other agents'
 * sessions can be neither killed nor discovered.
 */
export class MysqlConnectionRegistry {
  private readonly sessions = new Map<number, KillTarget>();

  issue(target: KillTarget): number {
    let id: number;
    do {
      id = crypto.randomInt(ID_MIN, ID_MAX);
    } while (this.sessions.has(id));
    this.sessions.set(id, target);
    return id;
  }

  revoke(id: number): void {
    this.sessions.delete(id);
  }

  /**
   * The session `id` names for a caller authenticated as `sub`. The id is tokengate's
   * connection id, or else the upstream thread id (what CONNECTION_ID() returns in SQL) of
   * exactly one of the caller's own sessions.
   */
  find(id: number, sub: string): KillTarget | undefined {
    const direct = this.sessions.get(id);
    if (direct) return direct.owner === sub ? direct : undefined;
    let match: KillTarget | undefined;
    for (const s of this.sessions.values()) {
      if (s.owner !== sub || s.upstreamThreadId !== id) continue;
      if (match) return undefined; // the same thread id on two upstreams: ambiguous
      match = s;
    }
    return match;
  }

  get size(): number {
    return this.sessions.size;
  }
}
