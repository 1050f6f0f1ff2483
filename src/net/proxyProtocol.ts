import net from 'node:net';

/**
 * The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): the header a load
 * balancer sends first on a connection to say which client it carries. Pure and bounded: it looks
 * at the bytes received so far and says "need more", "a header of N bytes" or "not a header";
 * it never needs more than PROXY_HEADER_MAX bytes to decide.
 */

/** Where a proxied connection came from and went to, as the load balancer saw it. */
export interface ProxiedAddresses {
  family: 'tcp4' | 'tcp6';
  sourceAddress: string;
  sourcePort: number;
  destinationAddress: string;
  destinationPort: number;
}

/**
 * A header: `proxied` is the client's connection; undefined for LOCAL (v2: the balancer's own
 * health check), UNKNOWN (v1) and address families that are not TCP over IP, where the connection's
 * own addresses stand.
 */
export interface ProxyHeader {
  version: 1 | 2;
  proxied?: ProxiedAddresses;
}

export type ProxyParse =
  | { kind: 'incomplete' }
  | { kind: 'header'; header: ProxyHeader; length: number }
  | { kind: 'invalid'; reason: string };

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** v1: "PROXY TCP6 <39> <39> <5> <5>\r\n" is at most 107 bytes. */
const V1_MAX = 107;
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED = 16;
/** The largest header either version allows: v2's 16 bytes and a 16-bit length. */
export const PROXY_HEADER_MAX = V2_FIXED + 0xffff;

const INCOMPLETE: ProxyParse = { kind: 'incomplete' };

function matchesPrefix(buf: Buffer, signature: Buffer): boolean {
  const n = Math.min(buf.length, signature.length);
  return buf.subarray(0, n).equals(signature.subarray(0, n));
}

/**
 * The first bytes of a connection could be the start of a PROXY header (at least five of them
 * must have arrived): used to refuse headers from peers that are not trusted. Neither protocol's
 * first packet can start like this (PostgreSQL's length would be over 1 GB, MySQL's sequence
 * number not 1).
 */
export function startsLikeProxyHeader(buf: Buffer): boolean {
  return buf.length >= 5 && (matchesPrefix(buf, V1_PREFIX) || matchesPrefix(buf, V2_SIGNATURE));
}

/** Reads a PROXY header at the start of `buf` (everything received so far). */
export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (buf.length === 0) return INCOMPLETE;
  if (matchesPrefix(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? INCOMPLETE : parseV1(buf);
  if (matchesPrefix(buf, V2_SIGNATURE)) return buf.length < V2_FIXED ? INCOMPLETE : parseV2(buf);
  return { kind: 'invalid', reason: 'the connection did not start with a PROXY protocol header' };
}

const PORT = /^(0|[1-9][0-9]{0,4})$/;

function parseV1(buf: Buffer): ProxyParse {
  const window = buf.subarray(0, V1_MAX);
  const cr = window.indexOf(0x0d);
  if (cr < 0 || cr === window.length - 1) {
    return buf.length >= V1_MAX ? { kind: 'invalid', reason: 'PROXY v1 header longer than 107 bytes' } : INCOMPLETE;
  }
  if (window[cr + 1] !== 0x0a) return { kind: 'invalid', reason: 'PROXY v1 header line does not end with CRLF' };
  const line = window.subarray(0, cr).toString('latin1');
  const length = cr + 2;
  const fields = line.split(' ');
  if (fields[1] === 'UNKNOWN') return { kind: 'header', header: { version: 1 }, length };
  if (fields.length !== 6) return { kind: 'invalid', reason: 'PROXY v1 header needs: PROXY TCP4|TCP6 source destination sport dport' };
  const [, proto, src, dst, sport, dport] = fields as [string, string, string, string, string, string];
  const family = proto === 'TCP4' ? 'tcp4' : proto === 'TCP6' ? 'tcp6' : undefined;
  if (!family) return { kind: 'invalid', reason: `PROXY v1 protocol must be TCP4, TCP6 or UNKNOWN, got ${JSON.stringify(proto.slice(0, 8))}` };
  const isIp = family === 'tcp4' ? net.isIPv4 : net.isIPv6;
  if (!isIp(src) || !isIp(dst)) return { kind: 'invalid', reason: `PROXY v1 addresses are not ${family === 'tcp4' ? 'IPv4' : 'IPv6'} addresses` };
  if (!PORT.test(sport) || !PORT.test(dport) || Number(sport) > 65535 || Number(dport) > 65535) {
    return { kind: 'invalid', reason: 'PROXY v1 ports must be decimal numbers 0-65535' };
  }
  return {
    kind: 'header',
    header: { version: 1, proxied: { family, sourceAddress: src, sourcePort: Number(sport), destinationAddress: dst, destinationPort: Number(dport) } },
    length,
  };
}

const LOCAL = 0x0;
const PROXY = 0x1;
const AF_UNSPEC = 0x0;
const AF_INET = 0x1;
const AF_INET6 = 0x2;
const AF_UNIX = 0x3;
const STREAM = 0x1;

function parseV2(buf: Buffer): ProxyParse {
  const versionCommand = buf[12]!;
  if (versionCommand >> 4 !== 2) return { kind: 'invalid', reason: `PROXY v2 header with version ${versionCommand >> 4}` };
  const command = versionCommand & 0x0f;
  if (command !== LOCAL && command !== PROXY) return { kind: 'invalid', reason: `PROXY v2 header with an unknown command ${command}` };
  const family = buf[13]! >> 4;
  const transport = buf[13]! & 0x0f;
  const length = V2_FIXED + buf.readUInt16BE(14);
  if (buf.length < length) return INCOMPLETE;
  // LOCAL: the balancer speaks for itself (health checks); the address block is ignored.
  if (command === LOCAL) return { kind: 'header', header: { version: 2 }, length };
  const body = buf.subarray(V2_FIXED, length);
  if (family === AF_UNSPEC || family === AF_UNIX) {
    if (family === AF_UNIX && body.length < 216) return { kind: 'invalid', reason: 'PROXY v2 AF_UNIX header shorter than its addresses' };
    return { kind: 'header', header: { version: 2 }, length };
  }
  if (family !== AF_INET && family !== AF_INET6) return { kind: 'invalid', reason: `PROXY v2 header with an unknown address family ${family}` };
  if (transport !== STREAM) return { kind: 'invalid', reason: 'PROXY v2 header for a datagram (UDP) connection on a TCP listener' };
  const v4 = family === AF_INET;
  const need = v4 ? 12 : 36;
  if (body.length < need) return { kind: 'invalid', reason: `PROXY v2 ${v4 ? 'IPv4' : 'IPv6'} header shorter than its addresses` };
  const size = v4 ? 4 : 16;
  // Anything after the addresses is TLVs (ALPN, authority, SSL details): not needed, skipped.
  return {
    kind: 'header',
    header: {
      version: 2,
      proxied: {
        family: v4 ? 'tcp4' : 'tcp6',
        sourceAddress: ipText(body.subarray(0, size)),
        destinationAddress: ipText(body.subarray(size, 2 * size)),
        sourcePort: body.readUInt16BE(2 * size),
        destinationPort: body.readUInt16BE(2 * size + 2),
      },
    },
    length,
  };
}

/** An IPv4 or IPv6 address in its usual text form (IPv6 compressed as Node.js prints it). */
function ipText(bytes: Buffer): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  // IPv4-mapped (::ffff:a.b.c.d) as Node.js prints a socket's address, so the loopback rule reads it the same way.
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes.readUInt16BE(10) === 0xffff) return `::ffff:${Array.from(bytes.subarray(12)).join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return compressIpv6(groups);
}

/** RFC 5952: the longest run of two or more zero groups becomes "::". */
function compressIpv6(groups: string[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
