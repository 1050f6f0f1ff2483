import net from 'node:net';
import type { HostPort } from '../config/types';
import { log } from '../log';

/**
 * A TCP listener that hands each accepted socket to `onSocket`. It owns no sessions: they
 * register themselves with the session registry, which ends them at shutdown.
 */
export class TcpListener {
  private readonly server: net.Server;

  constructor(
    private readonly protocol: string,
    private readonly address: HostPort,
    onSocket: (socket: net.Socket) => void,
  ) {
    this.server = net.createServer({ noDelay: true }, onSocket);
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
