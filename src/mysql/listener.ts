import type { HostPort } from '../config/schema';
import { MysqlClientSession, type MysqlSessionDeps } from './clientSession';
import type { MysqlServerVersion } from './serverVersion';
import { SessionListener } from '../net/tcpListener';

/** The MySQL-protocol listener: one MysqlClientSession per accepted socket, greeting with the upstream's version. */
export class MysqlListener extends SessionListener<MysqlClientSession> {
  constructor(address: HostPort, deps: Omit<MysqlSessionDeps, 'onClose' | 'serverVersion'>, private readonly version: MysqlServerVersion) {
    super('mysql', address, (onClose) => {
      const sessionDeps: MysqlSessionDeps = { ...deps, serverVersion: () => version.current, onClose };
      return (socket) => new MysqlClientSession(socket, sessionDeps);
    });
  }

  /** Learns the upstream's version string (bounded wait), then listens. */
  override async listen(): Promise<HostPort> {
    await this.version.refresh();
    return super.listen();
  }
}
