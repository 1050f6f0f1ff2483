import net from 'node:net';
import type { HostPort } from '../config/types';
import { log } from '../log';
import { PgClientSession, type PgSessionDeps } from '../session/pgClientSession';

/** The PostgreSQL-protocol listener: one PgClientSession per accepted socket. */
export class PgListener {
  private readonly server: net.Server;
  private readonly sessions = new Set<PgClientSession>();

  constructor(private readonly address: HostPort, private readonly deps: Omit<PgSessionDeps, 'onClose'>) {
    this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  private accept(socket: net.Socket): void {
    const session = new PgClientSession(socket, { ...this.deps, onClose: (s) => this.sessions.delete(s) });
    this.sessions.add(session);
    session.start();
  }

  listen(): Promise<HostPort> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.address.port, this.address.host, () => {
        this.server.removeListener('error', reject);
        const a = this.server.address() as net.AddressInfo;
        log.info(`postgres listener on ${a.address}:${a.port}`);
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  get activeSessions(): number {
    return this.sessions.size;
  }

  /** Stop accepting, end every session with a FATAL "shutting down" message. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of [...this.sessions]) s.shutdown('tokengate is shutting down; reconnect in a moment');
    await closed;
  }
}
