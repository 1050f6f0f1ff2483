import type { HostPort } from './schema';

/** Why a "host:port" string was refused; written to follow "expected ... got". */
export class HostPortError extends Error {}

const EXAMPLE = 'expected "host:port" such as 127.0.0.1:6432, 0.0.0.0:6432 or [::1]:6432';

/** Parses "host:port" and "[ipv6]:port". The port must be 1-65535; 0 (any free port) only for listeners. */
export function parseHostPort(text: string, allowAnyPort = false): { host: string; port: number } {
  const shownText = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text);
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]\s]+):(\d{1,5})$/.exec(text);
  if (!m) {
    const bareIpv6 = (text.match(/:/g) ?? []).length > 1 && !text.startsWith('[');
    throw new HostPortError(`${EXAMPLE}, got ${shownText}${bareIpv6 ? ' (write IPv6 addresses in brackets)' : ''}`);
  }
  const port = Number(m[2]);
  if ((port < 1 && !(allowAnyPort && port === 0)) || port > 65535) throw new HostPortError(`port must be 1-65535${allowAnyPort ? ' (or 0 for any free port)' : ''}, got ${shownText}`);
  return { host: m[1], port };
}

/** Formats a HostPort back to "host:port" (brackets for IPv6). */
export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** True for names/addresses that only the local machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}
