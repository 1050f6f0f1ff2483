import net from 'node:net';
import type { HostPort } from '../config/schema';
import { log } from '../log';

/** What a listener needs from a client session of any protocol. */
export interface ListenerSession {
  start(): void;
  /** End the session with the protocol's own "shutting down" error. */
  shutdown(message: string): void;
}

/** A TCP listener that runs one session per accepted socket and ends them all on close. */
export class SessionListener<S extends ListenerSession> {
  private readonly server: net.Server;
  private readonly sessions = new Set<S>();

  /**
   * `sessionFactory` is called once, with the hook every session calls when it ends, and returns
   * the function that makes one session per socket. Build the sessions' shared dependencies there,
   * once: with a fresh `{ ...deps, onClose }` per connection V8 missed its inline caches on every
   * connection (--log-ic: about three misses each; docs/performance.md, change 14).
   */
  constructor(
    private readonly protocol: string,
    private readonly address: HostPort,
    sessionFactory: (onClose: (s: S) => void) => (socket: net.Socket) => S,
  ) {
    const newSession = sessionFactory((s) => {
      this.sessions.delete(s);
    });
    this.server = net.createServer({ noDelay: true }, (socket) => {
      const session = newSession(socket);
      this.sessions.add(session);
      session.start();
    });
  }

  listen(): Promise<HostPort> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.address.port, this.address.host, () => {
        this.server.removeListener('error', reject);
        const a = this.server.address() as net.AddressInfo;
        log.info(`${this.protocol} listener on ${a.address}:${a.port}`);
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  get activeSessions(): number {
    return this.sessions.size;
  }

  /** Stop accepting and end every session with a "shutting down" error. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of [...this.sessions]) s.shutdown('tokengate is shutting down; reconnect in a moment');
    await closed;
  }
}
