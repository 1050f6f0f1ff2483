/**
 * A bare Node.js TCP relay: bytes in, bytes out, no protocol at all. It is the reference row of
 * scenarios 1 and 2 (in front of PostgreSQL) and 4 (in front of MariaDB): the cost of any relay
 * built on Node's net streams, so the table shows how much of tokengate's cost is its own
 * (following the protocol) and how much is the runtime's.
 *
 * Run as a child process: `node nodePipe.js LISTEN_PORT UPSTREAM_PORT`.
 */
import net from 'node:net';
import path from 'node:path';
import { freePort, startDaemon, waitForPort, type Daemon, type Wrapper } from '../proc';
import { keepNextTickShape } from '../../../src/v8/nextTickShape';

export interface NodePipe {
  port: number;
  pid: number;
  daemon: Daemon;
  stop(): Promise<void>;
}

export async function startNodePipe(dir: string, upstreamPort: number, name = 'node-pipe', wrapper?: Wrapper): Promise<NodePipe> {
  const port = await freePort();
  const daemon = startDaemon(name, process.execPath, [__filename, String(port), String(upstreamPort)], path.join(dir, `${name}.log`), { wrapper });
  await waitForPort(port, { daemon, timeoutMs: wrapper?.startTimeoutMs });
  return { port, pid: daemon.child.pid!, daemon, stop: () => daemon.stop() };
}

/** Forwards bytes both ways between two sockets (with backpressure) until either side closes. */
export function pipeBoth(client: net.Socket, upstream: net.Socket): void {
  const pipe = (from: net.Socket, to: net.Socket): void => {
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
  };
  pipe(client, upstream);
  pipe(upstream, client);
  for (const s of [client, upstream]) {
    s.on('error', () => undefined);
    s.on('close', () => {
      client.destroy();
      upstream.destroy();
    });
  }
}

function relay(listenPort: number, upstreamPort: number): void {
  net
    .createServer({ noDelay: true }, (client) => pipeBoth(client, net.connect({ host: '127.0.0.1', port: upstreamPort, noDelay: true })))
    .listen(listenPort, '127.0.0.1');
}

if (require.main === module) {
  // As tokengate does: any Node.js relay can keep nextTick off V8's slow path, so the floor includes it.
  keepNextTickShape();
  relay(Number(process.argv[2]), Number(process.argv[3]));
}
