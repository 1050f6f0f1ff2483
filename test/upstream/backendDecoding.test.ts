import fc from 'fast-check';
import { BackendFrameReader, UpstreamProtocolError } from '../../src/upstream/backendFrames';
import {
  decodeAuthRequest, decodeBackendKeyData, decodeCommandComplete, decodeDataRow, decodeErrorFields,
  decodeParameterStatus, decodeReadyForQuery,
} from '../../src/upstream/backendMessages';

function msg(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const stream = Buffer.concat([
  msg('R', Buffer.from([0, 0, 0, 0])),
  msg('S', Buffer.from('TimeZone\0UTC\0')),
  msg('K', Buffer.from([0, 0, 0, 42, 1, 2, 3, 4])),
  msg('Z', Buffer.from('I')),
]);

describe('BackendFrameReader', () => {
  test('frames the same messages however the stream is chunked', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 10 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const r = new BackendFrameReader();
        const types: string[] = [];
        let prev = 0;
        for (const p of [...points, stream.length]) {
          r.push(stream.subarray(prev, p));
          prev = p;
          for (let f = r.next(); f; f = r.next()) types.push(f.type);
        }
        expect(types).toEqual(['R', 'S', 'K', 'Z']);
        expect(r.buffered).toBe(0);
      }),
    );
  });

  test('keeps unconsumed bytes for takeRemaining()', () => {
    const r = new BackendFrameReader();
    r.push(Buffer.concat([stream, Buffer.from('Z\0\0')]));
    for (let i = 0; i < 4; i++) expect(r.next()).toBeDefined();
    expect(r.next()).toBeUndefined();
    expect(r.takeRemaining()).toEqual(Buffer.from('Z\0\0'));
    expect(r.buffered).toBe(0);
  });

  test('refuses lengths below 4 or above the bound instead of buffering forever', () => {
    const r = new BackendFrameReader(1024);
    r.push(Buffer.from([0x44, 0x7f, 0xff, 0xff, 0xff]));
    expect(() => r.next()).toThrow(/length 2147483647; expected 4\.\.1024/);
    const r2 = new BackendFrameReader();
    r2.push(Buffer.from([0x44, 0, 0, 0, 3]));
    expect(() => r2.next()).toThrow(UpstreamProtocolError);
  });
});

describe('backend message decoders', () => {
  test('decode well-formed bodies', () => {
    expect(decodeAuthRequest(Buffer.from([0, 0, 0, 10, ...Buffer.from('SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0')]))).toEqual({ kind: 'sasl', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] });
    expect(decodeAuthRequest(Buffer.from([0, 0, 0, 5, 9, 8, 7, 6]))).toEqual({ kind: 'md5', salt: Buffer.from([9, 8, 7, 6]) });
    expect(decodeAuthRequest(Buffer.from([0, 0, 0, 7]))).toEqual({ kind: 'other', code: 7, method: 'GSSAPI' });
    expect(decodeParameterStatus(Buffer.from('a\0b\0'))).toEqual({ name: 'a', value: 'b' });
    expect(decodeBackendKeyData(Buffer.from([0, 0, 1, 0, 1, 2, 3, 4]))).toEqual({ processId: 256, secretKey: Buffer.from([1, 2, 3, 4]) });
    expect(decodeReadyForQuery(Buffer.from('T'))).toBe('T');
    expect(decodeCommandComplete(Buffer.from('SELECT 1\0'))).toBe('SELECT 1');
    expect(decodeDataRow(Buffer.from([0, 2, 0, 0, 0, 1, 0x78, 0xff, 0xff, 0xff, 0xff]))).toEqual(['x', null]);
    expect(decodeErrorFields(Buffer.from('SFATAL\0VFATAL\0C28P01\0Mbad\0\0'))).toMatchObject({ severity: 'FATAL', code: '28P01', message: 'bad' });
  });

  test('arbitrary bytes either decode or throw UpstreamProtocolError; never hang or throw anything else', () => {
    const decoders = [decodeAuthRequest, decodeBackendKeyData, decodeCommandComplete, decodeDataRow, decodeErrorFields, decodeParameterStatus, decodeReadyForQuery];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        for (const d of decoders) {
          try {
            d(Buffer.from(bytes));
          } catch (e) {
            expect(e).toBeInstanceOf(UpstreamProtocolError);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
