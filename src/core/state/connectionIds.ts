import crypto from 'node:crypto';

/**
 * Gateway-issued MySQL connection ids (the id in the greeting, which drivers show as the thread
 * id and the mariadb CLI sends in `KILL QUERY <id>` on Ctrl-C), mapped to session ids.
 */
export interface ConnectionIdStore {
  issue(sessionId: string): number;
  /** The session an id was issued to, or undefined. */
  lookup(id: number): string | undefined;
  release(id: number): void;
  readonly size: number;
  /**
   * A `KILL [QUERY|CONNECTION] id` for an id another instance issued (named by its instance
   * bits): forwarded there, for a session of the same `sub`. Resolves true when the owner did
   * it; undefined when the id is not another instance's.
   */
  forwardKill?(id: number, sub: string, scope: 'query' | 'connection'): Promise<boolean> | undefined;
}

/**
 * Ids drawn from [2^30, 2^31): far above the small, sequential thread ids MySQL/MariaDB hand
 * out, so a gateway id relayed by mistake cannot name a real upstream thread, and still below
 * 2^31 for drivers that read the id as a signed int.
 */
export const CONNECTION_ID_MIN = 0x40000000;
export const CONNECTION_ID_MAX = 0x80000000;

export class InProcessConnectionIds implements ConnectionIdStore {
  readonly #sessions = new Map<number, string>();

  issue(sessionId: string): number {
    let id: number;
    do {
      id = crypto.randomInt(CONNECTION_ID_MIN, CONNECTION_ID_MAX);
    } while (this.#sessions.has(id));
    this.#sessions.set(id, sessionId);
    return id;
  }

  lookup(id: number): string | undefined {
    return this.#sessions.get(id);
  }

  release(id: number): void {
    this.#sessions.delete(id);
  }

  get size(): number {
    return this.#sessions.size;
  }
}
