import { V2_SIGNATURE, type ProxiedAddresses } from '../../src/net/proxyProtocol';

/** What HAProxy's send-proxy and send-proxy-v2 write, for crafted headers in tests. */

/** A v1 header line for these addresses (tests and tools; what HAProxy's send-proxy writes). */
export function encodeProxyV1(a: ProxiedAddresses | undefined): Buffer {
  if (!a) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  return Buffer.from(`PROXY ${a.family.toUpperCase()} ${a.sourceAddress} ${a.destinationAddress} ${a.sourcePort} ${a.destinationPort}\r\n`, 'latin1');
}

/** A v2 header for these addresses (LOCAL when undefined), with optional raw TLV bytes after them. */
export function encodeProxyV2(a: ProxiedAddresses | undefined, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  if (!a) return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  const v4 = a.family === 'tcp4';
  const addr = Buffer.concat([ipBytes(a.sourceAddress, v4), ipBytes(a.destinationAddress, v4), Buffer.alloc(4)]);
  addr.writeUInt16BE(a.sourcePort, addr.length - 4);
  addr.writeUInt16BE(a.destinationPort, addr.length - 2);
  const head = Buffer.from([0x21, v4 ? 0x11 : 0x21, 0, 0]);
  head.writeUInt16BE(addr.length + tlvs.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, addr, tlvs]);
}

function ipBytes(address: string, v4: boolean): Buffer {
  if (v4) return Buffer.from(address.split('.').map(Number));
  // Expand "::" into the missing zero groups (hex groups only: no embedded IPv4).
  const [head, tail] = address.includes('::') ? address.split('::') as [string, string] : [address, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
