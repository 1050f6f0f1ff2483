import type net from 'node:net';
import { formatRemote } from './address';
import type { AddressSet } from './addressSet';
import { parseProxyHeader, PROXY_HEADER_MAX } from './proxyProtocol';

/**
 * Who a client connection is from. Without `listen.proxyProtocol` it is the socket's peer. With
 * it, a connection from a trusted load balancer must start with a PROXY header (HAProxy's
 * accept-proxy semantics), which names the client; a connection from anywhere else is the client
 * itself, and a PROXY header from it is refused.
 */
export interface ClientPeer {
  address: string;
  port: number;
  /** The load balancer's "host:port" when a PROXY header named the client. */
  via?: string;
  /** The connection must be refused before its handshake: a trusted peer sent no usable PROXY header. */
  refusal?: string;
  /** This peer may not send a PROXY header (proxyProtocol is on and it is not trusted). */
  refuseProxyHeader: boolean;
}

export interface ProxyProtocolOptions {
  trusted: AddressSet;
  /** How long a trusted peer has to send its header (bounded by session.authTimeout). */
  timeoutMs: () => number;
}

/** The longest a trusted peer may take to send its header: load balancers send it at once. */
export const PROXY_HEADER_TIMEOUT_MS = 5_000;

function socketPeer(socket: net.Socket, refuseProxyHeader: boolean): ClientPeer {
  return { address: socket.remoteAddress ?? 'unknown', port: socket.remotePort ?? 0, refuseProxyHeader };
}

/**
 * Finds the client of a new connection; calls `ready` with it, the socket paused and holding any
 * bytes after the header, or not at all when the connection closed first.
 */
export function identifyPeer(socket: net.Socket, proxy: ProxyProtocolOptions | undefined, ready: (peer: ClientPeer) => void): void {
  if (!proxy || !proxy.trusted.has(socket.remoteAddress)) {
    ready(socketPeer(socket, proxy !== undefined));
    return;
  }
  const via = formatRemote(socket);
  let received: Buffer = Buffer.alloc(0);
  let settled = false;
  const settle = (peer: ClientPeer | undefined, rest?: Buffer): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.pause();
    socket.removeListener('data', onData);
    socket.removeListener('close', onClose);
    socket.removeListener('error', onClose);
    if (!peer) return;
    if (rest?.length) socket.unshift(rest);
    ready(peer);
  };
  const refuse = (why: string): void => settle({ ...socketPeer(socket, false), via, refusal: why });
  const onData = (chunk: Buffer): void => {
    received = received.length ? Buffer.concat([received, chunk]) : chunk;
    const r = parseProxyHeader(received.subarray(0, PROXY_HEADER_MAX));
    if (r.kind === 'incomplete') return;
    if (r.kind === 'invalid') return refuse(r.reason);
    const p = r.header.proxied;
    // LOCAL and UNKNOWN: the balancer speaks for itself (a health check); its own address stands.
    const peer: ClientPeer = p ? { address: p.sourceAddress, port: p.sourcePort, via, refuseProxyHeader: false } : { ...socketPeer(socket, false), via };
    settle(peer, received.subarray(r.length));
  };
  const onClose = (): void => {
    settle(undefined);
    socket.destroy();
  };
  const timer = setTimeout(() => refuse(`no PROXY protocol header within ${proxy.timeoutMs() / 1000}s`), proxy.timeoutMs());
  socket.on('data', onData);
  socket.once('close', onClose);
  socket.once('error', onClose);
}
