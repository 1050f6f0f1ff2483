import type { HostPort } from '../config/schema';
import type { ProxyProtocolOptions } from '../net/clientPeer';
import { TcpListener } from '../net/tcpListener';
import { PgClientSession, type PgSessionDeps } from './clientSession';

/** The PostgreSQL-protocol listener: one PgClientSession per accepted socket. */
export class PgListener extends TcpListener {
  constructor(address: HostPort, deps: PgSessionDeps, proxy?: ProxyProtocolOptions) {
    super('postgres', address, (socket, peer) => new PgClientSession(socket, deps, peer).start(), proxy);
  }
}
