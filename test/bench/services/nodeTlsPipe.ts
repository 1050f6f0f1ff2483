/**
 * A bare Node.js relay that terminates the client's TLS: it answers PostgreSQL's SSLRequest with
 * 'S', completes the handshake with node:tls, then forwards the decrypted bytes to the server
 * over plaintext TCP and nothing else. It is the reference row of the TLS scenario: what any
 * Node.js relay pays for TLS on the client side, so the table separates that runtime cost from
 * what tokengate adds by following the protocol.
 *
 * Run as a child process: `node nodeTlsPipe.js LISTEN_PORT UPSTREAM_PORT CERT_FILE KEY_FILE`.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { freePort, startDaemon, waitForPort, type Wrapper } from '../proc';
import { keepNextTickShape } from '../../../src/v8/nextTickShape';
import { pipeBoth, type NodePipe } from './nodePipe';
import type { BenchCert } from './tlsCert';

export async function startNodeTlsPipe(dir: string, upstreamPort: number, cert: BenchCert, name = 'node-tls-pipe', wrapper?: Wrapper): Promise<NodePipe> {
  const port = await freePort();
  const daemon = startDaemon(name, process.execPath, [__filename, String(port), String(upstreamPort), cert.certFile, cert.keyFile],
    path.join(dir, `${name}.log`), { wrapper });
  await waitForPort(port, { daemon, timeoutMs: wrapper?.startTimeoutMs });
  return { port, pid: daemon.child.pid!, daemon, stop: () => daemon.stop() };
}

/** Int32 request codes of the 8-byte packets a client may send before its startup message. */
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

function relay(listenPort: number, upstreamPort: number, secureContext: tls.SecureContext): void {
  net
    .createServer({ noDelay: true }, (client) => {
      let head = Buffer.alloc(0);
      const connectUpstream = (): net.Socket => net.connect({ host: '127.0.0.1', port: upstreamPort, noDelay: true });
      const onData = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk]);
        if (head.length < 8) return;
        const code = head.readInt32BE(4);
        if (head.readInt32BE(0) === 8 && code === GSSENC_REQUEST) {
          client.write('N');
          head = head.subarray(8);
          return;
        }
        client.removeListener('data', onData);
        if (head.readInt32BE(0) === 8 && code === SSL_REQUEST && head.length === 8) {
          // As tokengate does: wrap the socket once 'S' is flushed (the client sends its ClientHello after reading it).
          client.write('S', () => pipeBoth(new tls.TLSSocket(client, { isServer: true, secureContext }), connectUpstream()));
          return;
        }
        // A plaintext startup message: relay it and everything after it as they are.
        const upstream = connectUpstream();
        upstream.write(head);
        pipeBoth(client, upstream);
      };
      client.on('data', onData);
      client.on('error', () => client.destroy());
    })
    .listen(listenPort, '127.0.0.1');
}

if (require.main === module) {
  keepNextTickShape();
  const [listenPort, upstreamPort, certFile, keyFile] = process.argv.slice(2);
  relay(Number(listenPort), Number(upstreamPort), tls.createSecureContext({ cert: readFileSync(certFile), key: readFileSync(keyFile) }));
}
