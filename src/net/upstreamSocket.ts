import net from 'node:net';
import type tls from 'node:tls';
import { readFile } from 'node:fs/promises';
import type { UpstreamTlsMode } from '../config/schema';

/** Turns a low-level failure into the protocol's own login error (PG or MySQL). */
export type LoginErrorFactory = (message: string) => Error;

/** Client TLS options for an upstream login: verify-full checks the CA and host; the other modes only encrypt. */
export async function upstreamTlsOptions(
  o: { host: string; tls: UpstreamTlsMode; caFile?: string },
  loginError: LoginErrorFactory,
): Promise<tls.ConnectionOptions> {
  // SNI must be a host name, never an IP literal (RFC 6066); the identity check still uses `host`.
  const base: tls.ConnectionOptions = { host: o.host, servername: net.isIP(o.host) ? undefined : o.host };
  if (o.tls !== 'verify-full') return { ...base, rejectUnauthorized: false };
  let ca: Buffer | undefined;
  if (o.caFile) {
    try {
      ca = await readFile(o.caFile);
    } catch (err) {
      throw loginError(`Cannot read the upstream CA file ${o.caFile} (tls: verify-full): ${(err as Error).message}. Fix caFile or its permissions.`);
    }
  }
  return { ...base, ca, rejectUnauthorized: true };
}

/** A TCP connection to an upstream with no-delay and keep-alive; failures name the upstream and what to check. */
export function connectUpstreamTcp(host: string, port: number, what: string, loginError: LoginErrorFactory): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.setNoDelay(true);
    s.setKeepAlive(true, 30_000);
    const onError = (err: Error): void => {
      s.destroy();
      reject(loginError(`Cannot connect to upstream ${what}: ${err.message}. Check the upstream host and port and that the server is running.`));
    };
    s.once('connect', () => {
      s.removeListener('error', onError);
      resolve(s);
    });
    s.once('error', onError);
  });
}
