import { InProcessConnectionIds, type ConnectionIdStore } from '../core/state/connectionIds';

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
 * Gateway-issued MySQL connection ids (the id in the greeting, which drivers show as the
 * thread id and the mariadb CLI sends in `KILL QUERY <id>` on Ctrl-C). A KILL is honoured
 * only for a session of the same `sub`; any other id is "unknown", so ids of other agents'
 * sessions can be neither killed nor discovered.
 */
export class MysqlConnectionRegistry {
  private readonly sessions = new Map<number, KillTarget>();

  /** `ids` hands out the ids (shared between gateway processes when they share state). */
  constructor(private readonly ids: ConnectionIdStore = new InProcessConnectionIds()) {}

  /** An id for this session's greeting; `sessionId` is what the id store records. */
  issue(target: KillTarget, sessionId = ''): number {
    const id = this.ids.issue(sessionId);
    this.sessions.set(id, target);
    return id;
  }

  revoke(id: number): void {
    this.ids.release(id);
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

  /** A KILL for an id another instance issued: see ConnectionIdStore.forwardKill. */
  forwardKill(id: number, sub: string, scope: 'query' | 'connection'): Promise<boolean> | undefined {
    return this.ids.forwardKill?.(id, sub, scope);
  }

  get size(): number {
    return this.sessions.size;
  }
}
