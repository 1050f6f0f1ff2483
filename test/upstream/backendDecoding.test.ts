/**
 * What the upstream layer reads itself: BackendStream (PgFramer plus a pull queue and hand-over
 * of unread bytes) and the protocols/postgres decoders for login and internal-query messages.
 */
import fc from 'fast-check';
import { Parser } from 'pg-protocol/dist/parser';
import type { BackendMessage } from 'pg-protocol/dist/messages';
import {
  AuthCode,
  BackendType,
  FrameError,
  ProtocolError,
  decodeAuthenticationRequest,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeDataRow,
  decodeErrorFields,
  decodeParameterStatus,
  decodeReadyForQuery,
  encodeMessage,
} from '../../protocols/postgres';
import { BackendStream } from '../../src/postgres/backendStream';
import { GOLDEN_STREAMS, goldenBytes, referenceSplit } from '../protocols/postgres/golden';

function msg(type: string, body: Buffer): Buffer {
  return encodeMessage(type.charCodeAt(0), body);
}
const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const auth = (code: number, data: Buffer | string = Buffer.alloc(0)): Buffer => Buffer.concat([int32(code), Buffer.from(data)]);

const stream = Buffer.concat([
  msg('R', Buffer.from([0, 0, 0, 0])),
  msg('S', Buffer.from('TimeZone\0UTC\0')),
  msg('K', Buffer.from([0, 0, 0, 42, 1, 2, 3, 4])),
  msg('Z', Buffer.from('I')),
]);

function types(s: BackendStream): string[] {
  const out: string[] = [];
  for (let f = s.next(); f; f = s.next()) out.push(String.fromCharCode(f.type));
  return out;
}

describe('BackendStream', () => {
  test('frames the same messages however the stream is chunked', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 10 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const r = new BackendStream(1 << 16);
        const seen: string[] = [];
        let prev = 0;
        for (const p of [...points, stream.length]) {
          r.push(stream.subarray(prev, p));
          prev = p;
          seen.push(...types(r));
        }
        expect(seen).toEqual(['R', 'S', 'K', 'Z']);
        expect(r.buffered).toBe(0);
      }),
    );
  });

  test('keeps unconsumed bytes for takeUnread()', () => {
    const r = new BackendStream(1 << 16);
    r.push(Buffer.concat([stream, Buffer.from('Z\0\0')]));
    for (let i = 0; i < 4; i++) expect(r.next()).toBeDefined();
    expect(r.next()).toBeUndefined();
    expect(r.takeUnread()).toEqual(Buffer.from('Z\0\0'));
    expect(r.buffered).toBe(0);
  });

  test('takeUnread() returns exactly the bytes not yet read, wherever the chunks and reads stop', () => {
    const tail = Buffer.concat([msg('N', Buffer.from('SNOTICE\0C00000\0Mhello\0\0')), msg('S', Buffer.from('a\0b\0'))]);
    const all = Buffer.concat([stream, tail]);
    const allTypes = referenceSplit('server', all).map((m) => String.fromCharCode(m.type));
    expect(allTypes).toEqual(['R', 'S', 'K', 'Z', 'N', 'S']);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: all.length }), { maxLength: 8 }), fc.nat({ max: 6 }), fc.integer({ min: 0, max: all.length }), (cuts, reads, stopAt) => {
        const r = new BackendStream(1 << 16);
        const points = [...new Set(cuts.filter((c) => c <= stopAt))].sort((a, b) => a - b);
        let prev = 0;
        for (const p of [...points, stopAt]) {
          r.push(all.subarray(prev, p));
          prev = p;
        }
        let consumed = 0;
        let read = 0;
        for (; read < reads; read++) {
          const f = r.next();
          if (!f) break;
          consumed += 5 + f.bodyLength;
        }
        expect(r.buffered).toBe(stopAt - consumed);
        // The relay gets the rest, byte for byte: with what arrives later it frames the remaining messages.
        const unread = r.takeUnread();
        expect(unread.toString('hex')).toBe(all.subarray(consumed, stopAt).toString('hex'));
        expect(r.buffered).toBe(0);
        const relay = new BackendStream(1 << 16);
        relay.push(Buffer.concat([unread, all.subarray(stopAt)]));
        expect(types(relay)).toEqual(allTypes.slice(read));
      }),
      { numRuns: 500 },
    );
  });

  test('refuses lengths below 4 or above the bound instead of buffering forever', () => {
    const r = new BackendStream(1020);
    expect(() => r.push(Buffer.from([0x44, 0x7f, 0xff, 0xff, 0xff]))).toThrow(/length 2147483647, the limit is 1024 bytes/);
    const r2 = new BackendStream(1 << 16);
    expect(() => r2.push(Buffer.from([0x44, 0, 0, 0, 3]))).toThrow(FrameError);
  });
});

describe('backend message decoders', () => {
  test('decode well-formed bodies', () => {
    expect(decodeAuthenticationRequest(auth(10, 'SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0'))).toEqual({ kind: 'sasl', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] });
    expect(decodeAuthenticationRequest(Buffer.from([0, 0, 0, 5, 9, 8, 7, 6]))).toEqual({ kind: 'md5Password', salt: Buffer.from([9, 8, 7, 6]) });
    expect(decodeAuthenticationRequest(Buffer.from([0, 0, 0, 7]))).toEqual({ kind: 'unsupported', code: 7, method: 'GSSAPI' });
    expect(decodeParameterStatus(Buffer.from('a\0b\0'))).toEqual({ name: 'a', value: 'b' });
    expect(decodeBackendKeyData(Buffer.from([0, 0, 1, 0, 1, 2, 3, 4]))).toEqual({ processId: 256, secretKey: Buffer.from([1, 2, 3, 4]) });
    expect(decodeReadyForQuery(Buffer.from('T'))).toBe('T');
    expect(decodeCommandComplete(Buffer.from('SELECT 1\0'))).toBe('SELECT 1');
    expect(decodeDataRow(Buffer.from([0, 2, 0, 0, 0, 1, 0x78, 0xff, 0xff, 0xff, 0xff]))).toEqual([Buffer.from('x'), null]);
    expect(decodeErrorFields(Buffer.from('SFATAL\0VFATAL\0C28P01\0Mbad\0\0'))).toMatchObject({ severity: 'FATAL', code: '28P01', message: 'bad' });
  });

  test('arbitrary bytes either decode or throw ProtocolError; never hang or throw anything else', () => {
    const decoders = [decodeAuthenticationRequest, decodeBackendKeyData, decodeCommandComplete, decodeDataRow, decodeErrorFields, decodeParameterStatus, decodeReadyForQuery];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        for (const d of decoders) {
          try {
            d(Buffer.from(bytes));
          } catch (e) {
            expect(e).toBeInstanceOf(ProtocolError);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('authentication requests whose code is followed by arbitrary bytes decode or throw ProtocolError', () => {
    fc.assert(
      fc.property(fc.constantFrom(0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, -1, 0x7fffffff), fc.uint8Array({ maxLength: 48 }), (code, data) => {
        try {
          const req = decodeAuthenticationRequest(auth(code, Buffer.from(data)));
          expect(['ok', 'cleartextPassword', 'md5Password', 'sasl', 'saslContinue', 'saslFinal', 'unsupported']).toContain(req.kind);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('decodeAuthenticationRequest', () => {
  test('every sub-code of the protocol, including the ones the gateway cannot perform', () => {
    expect(decodeAuthenticationRequest(auth(AuthCode.Ok))).toEqual({ kind: 'ok' });
    expect(decodeAuthenticationRequest(auth(AuthCode.CleartextPassword))).toEqual({ kind: 'cleartextPassword' });
    expect(decodeAuthenticationRequest(auth(AuthCode.SASLContinue, 'r=abc,s=c2FsdA==,i=4096'))).toEqual({ kind: 'saslContinue', data: Buffer.from('r=abc,s=c2FsdA==,i=4096') });
    expect(decodeAuthenticationRequest(auth(AuthCode.SASLFinal, 'v=c2ln'))).toEqual({ kind: 'saslFinal', data: Buffer.from('v=c2ln') });
    expect(decodeAuthenticationRequest(auth(2))).toEqual({ kind: 'unsupported', code: 2, method: 'Kerberos V5' });
    expect(decodeAuthenticationRequest(auth(6))).toEqual({ kind: 'unsupported', code: 6, method: 'SCM credentials' });
    expect(decodeAuthenticationRequest(auth(8, Buffer.from([1, 2, 3])))).toEqual({ kind: 'unsupported', code: 8, method: 'GSSAPI continue' });
    expect(decodeAuthenticationRequest(auth(9))).toEqual({ kind: 'unsupported', code: 9, method: 'SSPI' });
    expect(decodeAuthenticationRequest(auth(99))).toEqual({ kind: 'unsupported', code: 99, method: 'authentication code 99' });
    expect(decodeAuthenticationRequest(auth(-1))).toEqual({ kind: 'unsupported', code: -1, method: 'authentication code -1' });
  });

  test('SASL data is copied, not a view of the received chunk', () => {
    const body = auth(AuthCode.SASLFinal, 'v=c2ln');
    const req = decodeAuthenticationRequest(body);
    body.fill(0);
    expect(req).toEqual({ kind: 'saslFinal', data: Buffer.from('v=c2ln') });
  });

  test('malformed layouts are refused with what was expected', () => {
    expect(() => decodeAuthenticationRequest(Buffer.from([0, 0, 0]))).toThrow(/3 bytes, expected at least 4/);
    expect(() => decodeAuthenticationRequest(auth(AuthCode.Ok, 'x'))).toThrow(/Authentication request 0 carries 1 unexpected bytes/);
    expect(() => decodeAuthenticationRequest(auth(AuthCode.CleartextPassword, 'x'))).toThrow(ProtocolError);
    expect(() => decodeAuthenticationRequest(auth(AuthCode.MD5Password, Buffer.from([1, 2, 3])))).toThrow(/3-byte salt, expected 4/);
    expect(() => decodeAuthenticationRequest(auth(AuthCode.MD5Password, Buffer.from([1, 2, 3, 4, 5])))).toThrow(/5-byte salt/);
    expect(() => decodeAuthenticationRequest(auth(AuthCode.SASL, 'SCRAM-SHA-256\0'))).toThrow(/missing its final NUL terminator/);
    expect(() => decodeAuthenticationRequest(auth(AuthCode.SASL, 'SCRAM-SHA-256'))).toThrow(/SASL mechanism name is missing its NUL terminator/);
    expect(() => decodeAuthenticationRequest(auth(AuthCode.SASL, 'SCRAM-SHA-256\0\0x'))).toThrow(/bytes after its mechanism list/);
    expect(decodeAuthenticationRequest(auth(AuthCode.SASL, '\0'))).toEqual({ kind: 'sasl', mechanisms: [] });
  });

  test('agrees with pg-protocol (node-postgres) on every request both understand', () => {
    const bodies = [
      auth(AuthCode.Ok),
      auth(AuthCode.CleartextPassword),
      auth(AuthCode.MD5Password, Buffer.from([0xde, 0xad, 0xbe, 0xef])),
      auth(AuthCode.SASL, 'SCRAM-SHA-256\0\0'),
      auth(AuthCode.SASL, 'SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0'),
      auth(AuthCode.SASLContinue, 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096'),
      auth(AuthCode.SASLFinal, 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='),
    ];
    for (const body of bodies) {
      const theirs = parseWithPgProtocol(msg('R', body)) as BackendMessage & { salt?: Buffer; mechanisms?: string[]; data?: string };
      const ours = decodeAuthenticationRequest(body);
      const name = ({ ok: 'authenticationOk', cleartextPassword: 'authenticationCleartextPassword', md5Password: 'authenticationMD5Password', sasl: 'authenticationSASL', saslContinue: 'authenticationSASLContinue', saslFinal: 'authenticationSASLFinal' } as Record<string, string>)[ours.kind];
      expect(theirs.name).toBe(name);
      if (ours.kind === 'md5Password') expect(ours.salt).toEqual(Buffer.from(theirs.salt!));
      if (ours.kind === 'sasl') expect(ours.mechanisms).toEqual(theirs.mechanisms);
      if (ours.kind === 'saslContinue' || ours.kind === 'saslFinal') expect(ours.data.toString('utf8')).toBe(theirs.data);
    }
  });

  test('AuthenticationOk in every golden PostgreSQL 15 capture', () => {
    let seen = 0;
    for (const g of GOLDEN_STREAMS.filter((s) => s.side === 'server')) {
      for (const m of referenceSplit('server', goldenBytes(g))) {
        if (m.type !== BackendType.Authentication) continue;
        expect(decodeAuthenticationRequest(m.body)).toEqual({ kind: 'ok' });
        seen++;
      }
    }
    expect(seen).toBeGreaterThanOrEqual(5);
  });
});

describe('decodeDataRow', () => {
  test('rows from the golden PostgreSQL 15 captures: psql "select 1" and node-postgres "select $1::int"', () => {
    const rows = (file: string): Array<Array<string | null>> =>
      referenceSplit('server', goldenBytes(GOLDEN_STREAMS.find((g) => g.file === file)!))
        .filter((m) => m.type === BackendType.DataRow)
        .map((m) => decodeDataRow(m.body).map((c) => (c === null ? null : c.toString('utf8'))));
    expect(rows('psql15-session.server.hex')).toEqual([['1']]);
    expect(rows('psycopg2-startup.server.hex')).toEqual([['1']]);
    expect(rows('node-postgres-extended.server.hex')).toEqual([['42']]);
  });

  test('empty rows, empty values, NULLs and binary bytes; columns are views of the body', () => {
    expect(decodeDataRow(Buffer.from([0, 0]))).toEqual([]);
    const body = Buffer.from([0, 3, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 0x00, 0xff]);
    const row = decodeDataRow(body);
    expect(row).toEqual([Buffer.alloc(0), null, Buffer.from([0x00, 0xff])]);
    expect(row[2]!.buffer).toBe(body.buffer);
  });

  test('agrees with pg-protocol (node-postgres) on random text rows', () => {
    const column = fc.option(fc.string({ maxLength: 20 }), { nil: null });
    fc.assert(
      fc.property(fc.array(column, { maxLength: 12 }), (values) => {
        const parts: Buffer[] = [Buffer.from([values.length >> 8, values.length & 0xff])];
        for (const v of values) parts.push(v === null ? int32(-1) : Buffer.concat([int32(Buffer.byteLength(v)), Buffer.from(v)]));
        const body = Buffer.concat(parts);
        const theirs = parseWithPgProtocol(msg('D', body)) as BackendMessage & { fields: Array<string | null> };
        expect(decodeDataRow(body).map((c) => (c === null ? null : c.toString('utf8')))).toEqual(theirs.fields);
      }),
      { numRuns: 300 },
    );
  });

  test('malformed rows are refused with what was expected', () => {
    expect(() => decodeDataRow(Buffer.from([0]))).toThrow(/1 bytes, expected at least 2/);
    expect(() => decodeDataRow(Buffer.from([0xff, 0xff]))).toThrow(/claims 65535 columns in 0 bytes/);
    expect(() => decodeDataRow(Buffer.from([0, 1, 0, 0, 0, 5, 0x61]))).toThrow(/column 1 of 1 has length 5, but 1 bytes remain/);
    expect(() => decodeDataRow(Buffer.from([0, 1, 0xff, 0xff, 0xff, 0xfe]))).toThrow(/has length -2/);
    expect(() => decodeDataRow(Buffer.from([0, 2, 0, 0, 0, 4, 0x61, 0x62, 0x63, 0x64]))).toThrow(/ends inside the length of column 2 of 2/);
    expect(() => decodeDataRow(Buffer.from([0, 1, 0, 0, 0, 0, 0x61]))).toThrow(/1 bytes after its last column/);
  });
});

function parseWithPgProtocol(bytes: Buffer): BackendMessage {
  const out: BackendMessage[] = [];
  new Parser().parse(bytes, (m) => out.push(m));
  expect(out).toHaveLength(1);
  return out[0];
}
