import type { HostPort } from '../config/types';
import { TcpListener } from '../net/tcpListener';
import { PgClientSession, type PgSessionDeps } from './clientSession';

/** The PostgreSQL-protocol listener: one PgClientSession per accepted socket. */
export class PgListener extends TcpListener {
  constructor(address: HostPort, deps: PgSessionDeps) {
    super('postgres', address, (socket) => new PgClientSession(socket, deps).start());
  }
}
