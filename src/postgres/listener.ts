import type { HostPort } from '../config/schema';
import { PgClientSession, type PgSessionDeps } from './clientSession';
import { SessionListener } from '../net/tcpListener';

/** The PostgreSQL-protocol listener: one PgClientSession per accepted socket. */
export class PgListener extends SessionListener<PgClientSession> {
  constructor(address: HostPort, deps: Omit<PgSessionDeps, 'onClose'>) {
    super('postgres', address, (onClose) => {
      const sessionDeps: PgSessionDeps = { ...deps, onClose };
      return (socket) => new PgClientSession(socket, sessionDeps);
    });
  }
}
