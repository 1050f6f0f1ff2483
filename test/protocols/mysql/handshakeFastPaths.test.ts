/**
 * The per-connection fast paths of the connection phase agree with the plain codec:
 * HandshakeV10Template with encodeHandshakeV10 + encodePacket, and the lazily decoded
 * connection attributes with a straightforward PayloadReader decoding (the one the codec
 * used before), errors included.
 */
import fc from 'fast-check';
import { fuzzParams } from '../fuzzParams';
import {
  CLIENT_CONNECT_ATTRS,
  GATEWAY_CAPABILITIES,
  HandshakeV10Template,
  MAX_CONNECT_ATTRS,
  MysqlDecodeError,
  PayloadReader,
  decodeHandshakeResponse41,
  decodeHandshakeV10,
  encodeHandshakeResponse41,
  encodeHandshakeV10,
  encodePacket,
  writeLenencBytes,
  writeLenencString,
  type HandshakeV10Constants,
} from '../../../protocols/mysql';
import { frameChunks, loadGolden } from './golden';

describe('HandshakeV10Template', () => {
  const constants = fc.record(
    {
      serverVersion: fc.string({ maxLength: 120, unit: 'binary' }).filter((s) => !s.includes('\0')),
      capabilities: fc.nat(0xffffffff),
      characterSet: fc.nat(255),
      statusFlags: fc.nat(0xffff),
      authPluginName: fc.string({ maxLength: 40 }).filter((s) => !s.includes('\0')),
      mariadbCapabilities: fc.nat(0xffffffff),
    },
    { requiredKeys: ['serverVersion', 'capabilities', 'characterSet', 'statusFlags', 'authPluginName'] },
  );
  const perConnection = fc.array(fc.tuple(fc.nat(0xffffffff), fc.uint8Array({ minLength: 20, maxLength: 20 })), { minLength: 1, maxLength: 20 });

  it('gives the bytes of encodePacket(0, encodeHandshakeV10(...)) for any id and scramble', () => {
    fc.assert(
      fc.property(constants, perConnection, (c: HandshakeV10Constants, conns) => {
        const template = new HandshakeV10Template(c);
        for (const [connectionId, scr] of conns) {
          const authPluginData = Buffer.from(scr);
          const expected = encodePacket(0, encodeHandshakeV10({ ...c, connectionId, authPluginData }));
          expect(template.packet(connectionId, authPluginData).equals(expected)).toBe(true);
        }
      }),
      fuzzParams(500),
    );
  });

  it('hands out independent packets', () => {
    const template = new HandshakeV10Template({ serverVersion: '8.0.0', capabilities: GATEWAY_CAPABILITIES, characterSet: 45, statusFlags: 2, authPluginName: 'mysql_clear_password' });
    const a = template.packet(1, Buffer.alloc(20, 0x41));
    const b = template.packet(2, Buffer.alloc(20, 0x42));
    expect(decodeHandshakeV10(a.subarray(4))).toMatchObject({ connectionId: 1, authPluginData: Buffer.alloc(20, 0x41) });
    expect(decodeHandshakeV10(b.subarray(4))).toMatchObject({ connectionId: 2, authPluginData: Buffer.alloc(20, 0x42) });
  });

  it('reproduces a real MariaDB greeting', () => {
    const [packet] = frameChunks([loadGolden('mariadb-cli-session.hex').server[0]]);
    const { connectionId, authPluginData, ...c } = decodeHandshakeV10(packet.payload);
    expect(new HandshakeV10Template(c).packet(connectionId, authPluginData).equals(encodePacket(0, packet.payload))).toBe(true);
  });

  it('rejects a scramble that is not 20 bytes, as encodeHandshakeV10 does', () => {
    const template = new HandshakeV10Template({ serverVersion: 'v', capabilities: 0, characterSet: 0, statusFlags: 0, authPluginName: '' });
    expect(() => template.packet(1, Buffer.alloc(19))).toThrow(RangeError);
    expect(() => template.packet(1, Buffer.alloc(21))).toThrow(RangeError);
  });
});

/** The attribute decoding the codec had before attributes were decoded lazily. */
function referenceAttributes(block: Buffer): Record<string, string> {
  const r = new PayloadReader(block, 'HandshakeResponse41 connect attributes');
  const attrs: Record<string, string> = Object.create(null) as Record<string, string>;
  let count = 0;
  while (!r.atEnd) {
    if (++count > MAX_CONNECT_ATTRS) {
      throw new MysqlDecodeError('too_long', 'HandshakeResponse41 connect attributes', `more than ${MAX_CONNECT_ATTRS} attributes`);
    }
    const key = r.lenencString('attribute name');
    attrs[key] = r.lenencString('attribute value');
  }
  return attrs;
}

/** A HandshakeResponse41 payload whose attribute block is `block`, raw. */
function responseWith(block: Buffer): Buffer {
  const base = encodeHandshakeResponse41({
    capabilities: GATEWAY_CAPABILITIES | CLIENT_CONNECT_ATTRS,
    maxPacketSize: 1 << 24,
    characterSet: 45,
    username: 'reader',
    authResponse: Buffer.from('token\0'),
    database: 'db',
    authPluginName: 'mysql_clear_password',
    connectAttributes: {},
  });
  expect(base[base.length - 1]).toBe(0); // the empty block's length
  return Buffer.concat([base.subarray(0, base.length - 1), writeLenencBytes(block)]);
}

function outcome<T>(f: () => T): { ok: T } | { error: { name: string; code?: string; message: string } } {
  try {
    return { ok: f() };
  } catch (e) {
    const err = e as MysqlDecodeError;
    return { error: { name: err.name, code: err.code, message: err.message } };
  }
}

/** Decodes `block` both ways and checks they agree, for every name in it and for `probes`. */
function agree(block: Buffer, probes: string[] = []): void {
  const expected = outcome(() => referenceAttributes(block));
  const actual = outcome(() => decodeHandshakeResponse41(responseWith(block), GATEWAY_CAPABILITIES | CLIENT_CONNECT_ATTRS));
  if ('error' in expected) {
    expect(actual).toEqual(expected);
    return;
  }
  if (!('ok' in actual)) throw new Error(`decoding failed: ${actual.error.message}`);
  const lazy = decodeHandshakeResponse41(responseWith(block), GATEWAY_CAPABILITIES | CLIENT_CONNECT_ATTRS);
  for (const name of [...Object.keys(expected.ok), ...probes, 'program_name', '_client_name', '']) {
    expect(lazy.connectAttribute(name)).toBe(expected.ok[name]);
  }
  expect({ ...actual.ok.connectAttributes }).toEqual({ ...expected.ok });
  // After the full decoding, single reads give the same answers.
  for (const name of [...Object.keys(expected.ok), ...probes]) expect(actual.ok.connectAttribute(name)).toBe(expected.ok[name]);
}

const attrString = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12, unit: 'binary' }), fc.constantFrom('program_name', '_client_name', 'program_nam', 'program_name2'));
const attrPairs = fc.array(fc.tuple(attrString, attrString), { maxLength: 8 });
const blockOf = (pairs: Array<[string, string]>) => Buffer.concat(pairs.flatMap(([k, v]) => [writeLenencString(k), writeLenencString(v)]));

describe('connection attributes, decoded lazily', () => {
  it('agree with a full decoding, duplicates included (the later one wins)', () => {
    fc.assert(fc.property(attrPairs, fc.array(attrString, { maxLength: 4 }), (pairs, probes) => agree(blockOf(pairs), probes)), fuzzParams(1000));
  });

  it('reject a corrupted or cut block exactly as a full decoding does', () => {
    fc.assert(
      fc.property(attrPairs, fc.nat(), fc.nat(255), fc.nat(), (pairs, at, v, cut) => {
        const block = blockOf(pairs);
        if (block.length > 0) block[at % block.length] = v;
        agree(block.subarray(0, cut % (block.length + 1)));
      }),
      fuzzParams(2000),
    );
  });

  it('reject random bytes exactly as a full decoding does', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => agree(Buffer.from(b))), fuzzParams(2000));
  });

  it('handle 2-byte lengths, and long or bad length bytes', () => {
    agree(blockOf([['program_name', 'x'.repeat(300)], ['big', 'y'.repeat(60000)]]), ['big']);
    agree(Buffer.from([0x01, 0x61, 0xfd, 0x00, 0x00, 0x01, 0x62])); // a 3-byte length past the block
    for (const first of [0xfb, 0xfe, 0xff]) agree(Buffer.from([first, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    agree(Buffer.from([0xfc, 0xff, 0xff, 0x61])); // longer than the block
    agree(Buffer.from([0x01, 0x61, 0xfc, 0x05])); // value length cut
  });

  it('reject more than MAX_CONNECT_ATTRS attributes', () => {
    const pairs = Array.from({ length: MAX_CONNECT_ATTRS + 1 }, (_, i): [string, string] => [`k${i}`, '']);
    agree(blockOf(pairs.slice(0, MAX_CONNECT_ATTRS)), ['k0', `k${MAX_CONNECT_ATTRS - 1}`]);
    expect(() => decodeHandshakeResponse41(responseWith(blockOf(pairs)), GATEWAY_CAPABILITIES)).toThrow(/more than 256 attributes/);
  });

  it('compare names by their decoded text (invalid UTF-8, non-ASCII names)', () => {
    const block = Buffer.concat([
      writeLenencBytes(Buffer.from([0xff, 0x61])), writeLenencString('invalid'),
      writeLenencString('név'), writeLenencString('accented'),
      writeLenencString('program_name'), writeLenencString('mysql'),
    ]);
    agree(block, ['\ufffda', 'név', 'nev', '\u00ffa', 'program_name']);
    const r = decodeHandshakeResponse41(responseWith(block), GATEWAY_CAPABILITIES);
    expect(r.connectAttribute('\ufffda')).toBe('invalid');
    expect(r.connectAttribute('név')).toBe('accented');
    expect(r.connectAttribute('program_name')).toBe('mysql');
  });

  it('are absent when the client sends none', () => {
    const r = decodeHandshakeResponse41(
      encodeHandshakeResponse41({ capabilities: (GATEWAY_CAPABILITIES & ~CLIENT_CONNECT_ATTRS) >>> 0, maxPacketSize: 0, characterSet: 45, username: 'u', authResponse: Buffer.alloc(0) }),
      GATEWAY_CAPABILITIES,
    );
    expect(r.connectAttributes).toBeUndefined();
    expect(r.connectAttribute('program_name')).toBeUndefined();
  });

  it('read from real clients', () => {
    for (const [file, programName, clientName] of [
      ['clear-mariadb-cli.hex', 'mysql', 'libmariadb'],
      ['clear-pymysql.hex', undefined, 'pymysql'],
    ] as const) {
      const [packet] = frameChunks([loadGolden(file).client[0]]);
      const r = decodeHandshakeResponse41(packet.payload, GATEWAY_CAPABILITIES);
      expect(r.connectAttribute('program_name')).toBe(programName);
      expect(r.connectAttribute('_client_name')).toBe(clientName);
      expect(r.connectAttribute('_client_name')).toBe(r.connectAttributes?._client_name);
    }
  });
});
