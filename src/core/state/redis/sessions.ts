import { LocalSessionDirectory, type SessionDirectory } from '../../../admin/sessionDirectory';
import type { SessionView } from '../../../admin/views';
import type { SessionFilter } from '../../sessionRegistry';
import type { Clock } from '../../clock';
import type { PeerBus } from './bus';
import type { InstanceAnnouncement, InstanceRegistry } from './instances';
import type { RedisLink } from './link';

/**
 * GET /sessions and DELETE /sessions/{id} across instances: sessions are not stored in Redis
 * (nothing per query or per statement touches it); the instance asked sends a request on the
 * bus and every live instance answers with its own, so counters are as fresh as the request.
 */

const LIST = 'sessions-list';
const GET = 'sessions-get';
const KILL = 'sessions-kill';

interface KillRequest {
  id: string;
  message: string;
  by: string;
}

export class ClusterSessionDirectory implements SessionDirectory {
  constructor(
    private readonly local: LocalSessionDirectory,
    private readonly link: RedisLink,
    private readonly bus: PeerBus,
    private readonly instances: InstanceRegistry,
    private readonly clock: Clock,
  ) {
    bus.handle(LIST, (filter) => local.views(filter as SessionFilter));
    bus.handle(GET, (id) => local.view(String(id)) ?? null);
    bus.handle(KILL, (body) => {
      const k = body as KillRequest;
      return local.kill(k.id, k.message, k.by);
    });
  }

  async list(filter: SessionFilter): Promise<{ sessions: SessionView[]; unanswered: string[] }> {
    const sessions = this.local.views(filter);
    const others = await this.#others();
    if (!others) return { sessions, unanswered: this.instances.lastSeen };
    const replies = await this.bus.ask(undefined, LIST, filter, others.length);
    for (const r of replies) if (Array.isArray(r.body)) sessions.push(...(r.body as SessionView[]));
    const answered = new Set(replies.map((r) => r.from));
    sessions.sort((a, b) => (a.startedAt ?? '').localeCompare(b.startedAt ?? ''));
    return { sessions, unanswered: others.filter((a) => !answered.has(a.key)).map((a) => a.id) };
  }

  async get(id: string): Promise<SessionView | undefined> {
    const here = this.local.view(id);
    if (here) return here;
    const others = await this.#others();
    if (!others) return undefined;
    const replies = await this.bus.ask(undefined, GET, id, others.length, (rs) => rs.some((r) => r.body));
    return replies.find((r) => r.body)?.body as SessionView | undefined;
  }

  async kill(id: string, message: string, by: string): Promise<boolean> {
    if (await this.local.kill(id, message, by)) return true;
    const others = await this.#others();
    if (!others) return false;
    const replies = await this.bus.ask(undefined, KILL, { id, message, by } satisfies KillRequest, others.length, (rs) => rs.some((r) => r.body === true));
    return replies.some((r) => r.body === true);
  }

  /** The other live instances; undefined while Redis cannot be asked. */
  async #others(): Promise<InstanceAnnouncement[] | undefined> {
    if (!this.link.available) return undefined;
    try {
      return await this.instances.others(this.clock.now());
    } catch {
      return undefined;
    }
  }
}
