import type { SessionFilter, SessionRegistry } from '../core/sessionRegistry';
import { sessionView, type SessionView } from './views';

/**
 * The sessions GET/DELETE /sessions work on: this instance's, or (with shared state) every
 * instance's, each session named with the instance that holds it.
 */
export interface SessionDirectory {
  /** Sessions matching `filter`, and the instances that did not answer in time (their sessions are missing). */
  list(filter: SessionFilter): Promise<{ sessions: SessionView[]; unanswered: string[] }>;
  get(id: string): Promise<SessionView | undefined>;
  /** Ends the session (audit reason killed, by `by`) wherever it is; false when no instance holds it. */
  kill(id: string, message: string, by: string): Promise<boolean>;
}

/** This instance's sessions only (no shared state). */
export class LocalSessionDirectory implements SessionDirectory {
  constructor(private readonly registry: SessionRegistry, private readonly instance: string) {}

  async list(filter: SessionFilter): Promise<{ sessions: SessionView[]; unanswered: string[] }> {
    return { sessions: this.views(filter), unanswered: [] };
  }

  async get(id: string): Promise<SessionView | undefined> {
    return this.view(id);
  }

  async kill(id: string, message: string, by: string): Promise<boolean> {
    return this.registry.end(id, 'killed', message, by);
  }

  views(filter: SessionFilter): SessionView[] {
    return this.registry.select(filter).map((s) => sessionView(s.info(), this.instance));
  }

  view(id: string): SessionView | undefined {
    const s = this.registry.get(id);
    return s ? sessionView(s.info(), this.instance) : undefined;
  }
}
