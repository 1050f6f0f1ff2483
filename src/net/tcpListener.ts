import net from 'node:net';
import type { HostPort } from '../config/schema';
import { log } from '../log';
import { identifyPeer, type ClientPeer, type ProxyProtocolOptions } from './clientPeer';

/**
 * A TCP listener that hands each accepted socket to `onSocket` with its client (read from a
 * PROXY header first when the peer is a trusted load balancer). It owns no sessions: they
 * register themselves with the session registry, which ends them at shutdown.
 */
export class TcpListener {
  private readonly server: net.Server;

  constructor(
    private readonly protocol: string,
    private readonly address: HostPort,
    onSocket: (socket: net.Socket, peer: ClientPeer) => void,
    proxy?: ProxyProtocolOptions,
  ) {
    this.server = net.createServer({ noDelay: true }, (socket) => identifyPeer(socket, proxy, (peer) => {
      onSocket(socket, peer);
      socket.resume(); // paused while a PROXY header was read; the session's handlers are in place now
    }));
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

  /** Stops accepting; resolves once every connection it accepted has closed. */
  close(): Promise<void> {
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
