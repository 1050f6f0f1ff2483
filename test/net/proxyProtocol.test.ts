/**
 * The PROXY protocol parser: golden headers (the examples of HAProxy's proxy-protocol.txt and the
 * bytes HAProxy 2.6 writes), every split of a header into a received prefix, malformed headers,
 * and properties over random addresses, TLVs and bytes. Bounded: it never needs more than
 * PROXY_HEADER_MAX bytes to answer.
 */
import fc from 'fast-check';
import { parseProxyHeader, PROXY_HEADER_MAX, startsLikeProxyHeader, V2_SIGNATURE, type ProxiedAddresses, type ProxyParse } from '../../src/net/proxyProtocol';
import { AddressSet } from '../../src/net/addressSet';
import { parseCidr } from '../../src/config/cidr';
import { encodeProxyV1, encodeProxyV2 } from './proxyEncode';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

const TCP4: ProxiedAddresses = { family: 'tcp4', sourceAddress: '192.168.0.1', sourcePort: 56324, destinationAddress: '192.168.0.11', destinationPort: 443 };
const TCP6: ProxiedAddresses = { family: 'tcp6', sourceAddress: '2001:db8::1', sourcePort: 40000, destinationAddress: 'fd00::2:0:3', destinationPort: 6432 };

/** Golden vectors: bytes, the header they carry, how many bytes it took. */
const GOLDEN: Array<{ name: string; bytes: Buffer; proxied?: ProxiedAddresses; version: 1 | 2 }> = [
  { name: 'v1 TCP4 (the spec\'s example)', version: 1, bytes: Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'), proxied: TCP4 },
  { name: 'v1 TCP6', version: 1, bytes: Buffer.from('PROXY TCP6 2001:db8::1 fd00::2:0:3 40000 6432\r\n'), proxied: TCP6 },
  { name: 'v1 UNKNOWN', version: 1, bytes: Buffer.from('PROXY UNKNOWN\r\n') },
  { name: 'v1 UNKNOWN with addresses (allowed by the spec)', version: 1, bytes: Buffer.from('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n') },
  {
    name: 'v2 TCP4 as HAProxy writes it', version: 2, proxied: TCP4,
    bytes: hex('0d0a0d0a000d0a515549540a 21 11 000c c0a80001 c0a8000b dc04 01bb'),
  },
  {
    name: 'v2 TCP6', version: 2, proxied: TCP6,
    bytes: hex('0d0a0d0a000d0a515549540a 21 21 0024 20010db8000000000000000000000001 fd000000000000000000000200000003 9c40 1920'),
  },
  {
    name: 'v2 TCP4 with TLVs (ALPN, authority, NOOP padding) skipped', version: 2, proxied: TCP4,
    bytes: hex('0d0a0d0a000d0a515549540a 21 11 001c c0a80001 c0a8000b dc04 01bb 01 0002 6832 02 0004 64622e78 04 0001 00'),
  },
  { name: 'v2 LOCAL (a health check)', version: 2, bytes: hex('0d0a0d0a000d0a515549540a 20 00 0000') },
  { name: 'v2 LOCAL with an address block (ignored)', version: 2, bytes: hex('0d0a0d0a000d0a515549540a 20 11 000c 7f000001 7f000001 0000 0000') },
  { name: 'v2 PROXY with AF_UNSPEC', version: 2, bytes: hex('0d0a0d0a000d0a515549540a 21 00 0000') },
  { name: 'v2 AF_UNIX (the connection\'s own address stands)', version: 2, bytes: Buffer.concat([hex('0d0a0d0a000d0a515549540a 21 31 00d8'), Buffer.alloc(216)]) },
  {
    name: 'v2 IPv4-mapped IPv6 source, written as Node.js writes a socket address', version: 2,
    proxied: { family: 'tcp6', sourceAddress: '::ffff:127.0.0.1', sourcePort: 1, destinationAddress: '::1', destinationPort: 2 },
    bytes: hex('0d0a0d0a000d0a515549540a 21 21 0024 00000000000000000000ffff7f000001 00000000000000000000000000000001 0001 0002'),
  },
];

const INVALID: Array<{ name: string; bytes: Buffer; reason: RegExp }> = [
  { name: 'a PostgreSQL startup packet', bytes: hex('00000008 04d2162f'), reason: /did not start with a PROXY/ },
  { name: 'v1 with an unknown protocol', bytes: Buffer.from('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), reason: /TCP4, TCP6 or UNKNOWN/ },
  { name: 'v1 TCP4 with IPv6 addresses', bytes: Buffer.from('PROXY TCP4 ::1 ::1 1 2\r\n'), reason: /not IPv4/ },
  { name: 'v1 with a port over 65535', bytes: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), reason: /0-65535/ },
  { name: 'v1 with a leading zero port', bytes: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'), reason: /0-65535/ },
  { name: 'v1 with two spaces', bytes: Buffer.from('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'), reason: /needs/ },
  { name: 'v1 with a bare CR', bytes: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX'), reason: /CRLF/ },
  { name: 'v1 without an end within 107 bytes', bytes: Buffer.from(`PROXY TCP6 ${'f'.repeat(120)}`), reason: /107 bytes/ },
  { name: 'v2 version 1', bytes: hex('0d0a0d0a000d0a515549540a 11 11 000c'), reason: /version 1/ },
  { name: 'v2 unknown command', bytes: hex('0d0a0d0a000d0a515549540a 22 11 000c'), reason: /unknown command/ },
  { name: 'v2 UDP', bytes: hex('0d0a0d0a000d0a515549540a 21 12 000c c0a80001 c0a8000b dc04 01bb'), reason: /datagram/ },
  { name: 'v2 unknown family', bytes: hex('0d0a0d0a000d0a515549540a 21 41 0000'), reason: /address family/ },
  { name: 'v2 TCP4 shorter than its addresses', bytes: hex('0d0a0d0a000d0a515549540a 21 11 0008 c0a80001 c0a8000b'), reason: /shorter/ },
  { name: 'v2 TCP6 shorter than its addresses', bytes: hex('0d0a0d0a000d0a515549540a 21 21 000c c0a80001 c0a8000b dc04 01bb'), reason: /shorter/ },
  { name: 'v2 AF_UNIX shorter than its addresses', bytes: hex('0d0a0d0a000d0a515549540a 21 31 0004 00000000'), reason: /shorter/ },
];

describe('parseProxyHeader', () => {
  test.each(GOLDEN)('$name', ({ bytes, proxied, version }) => {
    const after = Buffer.from('\x00\x00\x00\x08after');
    expect(parseProxyHeader(Buffer.concat([bytes, after]))).toEqual({ kind: 'header', header: proxied ? { version, proxied } : { version }, length: bytes.length });
  });

  test.each(GOLDEN)('every received prefix of $name is incomplete', ({ bytes }) => {
    for (let n = 0; n < bytes.length; n++) expect(parseProxyHeader(bytes.subarray(0, n))).toEqual({ kind: 'incomplete' });
  });

  test.each(INVALID)('$name is refused', ({ bytes, reason }) => {
    const r = parseProxyHeader(bytes);
    expect(r.kind).toBe('invalid');
    expect((r as { reason: string }).reason).toMatch(reason);
  });

  test('the encoders used by the tests write what the golden vectors hold', () => {
    expect(encodeProxyV1(TCP4)).toEqual(GOLDEN[0]!.bytes);
    expect(encodeProxyV2(TCP4)).toEqual(GOLDEN[4]!.bytes);
    expect(encodeProxyV2(TCP6)).toEqual(GOLDEN[5]!.bytes);
    expect(encodeProxyV2(undefined)).toEqual(GOLDEN[7]!.bytes);
  });

  test('the largest v2 header is complete at PROXY_HEADER_MAX bytes and not before', () => {
    const big = encodeProxyV2(TCP4, Buffer.alloc(0xffff - 12, 0));
    expect(big.length).toBe(PROXY_HEADER_MAX);
    expect(parseProxyHeader(big.subarray(0, PROXY_HEADER_MAX - 1)).kind).toBe('incomplete');
    expect(parseProxyHeader(big)).toMatchObject({ kind: 'header', length: PROXY_HEADER_MAX });
  });
});

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
/** IPv6 as Node.js prints it (compressed, lower case): through the URL parser's canonical form. */
const ipv6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => new URL(`http://[${g.map((x) => x.toString(16)).join(':')}]/`).hostname.slice(1, -1))
  .filter((a) => !/^::ffff:\d/.test(a) && !a.includes('.'));
const port = fc.nat(65535);
const addresses: fc.Arbitrary<ProxiedAddresses> = fc.oneof(
  fc.record({ family: fc.constant('tcp4' as const), sourceAddress: ipv4, sourcePort: port, destinationAddress: ipv4, destinationPort: port }),
  fc.record({ family: fc.constant('tcp6' as const), sourceAddress: ipv6, sourcePort: port, destinationAddress: ipv6, destinationPort: port }),
);
const tlvs = fc.array(fc.tuple(fc.nat(255), fc.uint8Array({ maxLength: 64 })), { maxLength: 6 })
  .map((list) => Buffer.concat(list.map(([type, value]) => {
    const h = Buffer.from([type, 0, 0]);
    h.writeUInt16BE(value.length, 1);
    return Buffer.concat([h, Buffer.from(value)]);
  })));

describe('properties', () => {
  test('a v1 or v2 header for any addresses (v2 with any TLVs) reads back as written, whatever follows', () => {
    fc.assert(fc.property(addresses, tlvs, fc.boolean(), fc.uint8Array({ maxLength: 32 }), (a, t, v2, rest) => {
      const header = v2 ? encodeProxyV2(a, t) : encodeProxyV1(a);
      const r = parseProxyHeader(Buffer.concat([header, Buffer.from(rest)]));
      expect(r).toEqual({ kind: 'header', header: { version: v2 ? 2 : 1, proxied: a }, length: header.length });
    }));
  });

  test('a header split anywhere is incomplete until its last byte arrives', () => {
    fc.assert(fc.property(addresses, tlvs, fc.boolean(), (a, t, v2) => {
      const header = v2 ? encodeProxyV2(a, t) : encodeProxyV1(a);
      for (let n = 0; n < header.length; n++) expect(parseProxyHeader(header.subarray(0, n)).kind).toBe('incomplete');
    }), { numRuns: 50 });
  });

  test('any bytes: an answer without throwing, never a header longer than the bytes, never incomplete past the bound', () => {
    const prefixed = fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([Buffer.from('PROXY '), Buffer.from(b)])),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([V2_SIGNATURE, Buffer.from(b)])),
    );
    fc.assert(fc.property(prefixed, (buf) => {
      const r: ProxyParse = parseProxyHeader(buf);
      if (r.kind === 'header') expect(r.length).toBeLessThanOrEqual(buf.length);
      if (r.kind === 'incomplete') expect(buf.length).toBeLessThan(PROXY_HEADER_MAX);
    }), { numRuns: 2000 });
  });

  test('startsLikeProxyHeader holds for every header and for no PostgreSQL or MySQL first packet', () => {
    fc.assert(fc.property(addresses, fc.boolean(), (a, v2) => {
      expect(startsLikeProxyHeader((v2 ? encodeProxyV2(a) : encodeProxyV1(a)).subarray(0, 5))).toBe(true);
    }));
    // A PostgreSQL SSLRequest and startup packet, a MySQL SSLRequest (sequence 1).
    for (const first of ['0000000804d2162f', '0000005400030000', '2000000185ae7f00']) expect(startsLikeProxyHeader(hex(first))).toBe(false);
    expect(startsLikeProxyHeader(Buffer.from('PROX'))).toBe(false);
  });
});

describe('AddressSet (listen.proxyProtocol.trusted)', () => {
  const set = new AddressSet(['10.0.0.0/8', '192.0.2.10', 'fd00::/8', '::1'].map(parseCidr));

  test.each([
    ['10.1.2.3', true], ['::ffff:10.1.2.3', true], ['11.0.0.1', false], ['192.0.2.10', true], ['192.0.2.11', false],
    ['fd12::1', true], ['fe80::1', false], ['::1', true], ['127.0.0.1', false], [undefined, false], ['not-an-ip', false],
  ])('%s -> %s', (address, trusted) => expect(set.has(address)).toBe(trusted));

  test.each([
    ['10.0.0.0/33', /0-32/], ['fd00::/129', /0-128/], ['10.0.0.0/', /0-32/], ['10.0.0.0/x', /0-32/], ['example.com', /not an IP address/], ['10.0.0/8', /not an IP address/],
  ])('%s is refused', (entry, message) => expect(() => parseCidr(entry)).toThrow(message));
});
