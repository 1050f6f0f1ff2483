import net from 'node:net';
import type { HostPort } from '../config/types';
import { log } from '../log';
import { MysqlClientSession, type MysqlSessionDeps } from '../session/mysqlClientSession';
import type { MysqlServerVersion } from '../session/mysqlServerVersion';

/** The MySQL-protocol listener: one MysqlClientSession per accepted socket. */
export class MysqlListener {
  private readonly server: net.Server;
  private readonly sessions = new Set<MysqlClientSession>();

  constructor(
    private readonly address: HostPort,
    private readonly deps: Omit<MysqlSessionDeps, 'onClose' | 'serverVersion'>,
    private readonly version: MysqlServerVersion,
  ) {
    this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  private accept(socket: net.Socket): void {
    const session = new MysqlClientSession(socket, {
      ...this.deps,
      serverVersion: () => this.version.current,
      onClose: (s) => this.sessions.delete(s),
    });
    this.sessions.add(session);
    session.start();
  }

  /** Learns the upstream's version string (bounded wait), then listens. */
  async listen(): Promise<HostPort> {
    await this.version.refresh();
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.address.port, this.address.host, () => {
        this.server.removeListener('error', reject);
        const a = this.server.address() as net.AddressInfo;
        log.info(`mysql listener on ${a.address}:${a.port}`);
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  get activeSessions(): number {
    return this.sessions.size;
  }

  /** Stop accepting, end every session with an ERR "shutting down". */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of [...this.sessions]) s.shutdown('tokengate is shutting down; reconnect in a moment');
    await closed;
  }
}
