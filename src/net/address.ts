import net from 'node:net';

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.x.y.z). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.toLowerCase();
  if (a === '::1') return true;
  const v4 = a.startsWith('::ffff:') ? a.slice(7) : a;
  return net.isIPv4(v4) && v4.startsWith('127.');
}

/** "host:port" with IPv6 hosts bracketed, for logs and audit. */
export function formatAddress(host: string, port: number | undefined): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The socket's peer as formatAddress writes it. */
export function formatRemote(socket: net.Socket): string {
  return formatAddress(socket.remoteAddress ?? 'unknown', socket.remotePort);
}
