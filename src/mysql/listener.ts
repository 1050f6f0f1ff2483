import type { HostPort } from '../config/schema';
import type { ProxyProtocolOptions } from '../net/clientPeer';
import { TcpListener } from '../net/tcpListener';
import { MysqlClientSession, type MysqlSessionDeps } from './clientSession';
import type { MysqlServerVersion } from './serverVersion';

/** The MySQL-protocol listener: one MysqlClientSession per accepted socket, greeting with the upstream's version. */
export class MysqlListener extends TcpListener {
  constructor(address: HostPort, deps: Omit<MysqlSessionDeps, 'serverVersion'>, private readonly version: () => MysqlServerVersion, proxy?: ProxyProtocolOptions) {
    const sessionDeps: MysqlSessionDeps = { ...deps, serverVersion: () => version().current };
    super('mysql', address, (socket, peer) => new MysqlClientSession(socket, sessionDeps, peer).start(), proxy);
  }

  /** Learns the upstream's version string (bounded wait), then listens. */
  override async listen(): Promise<HostPort> {
    await this.version().refresh();
    return super.listen();
  }
}
