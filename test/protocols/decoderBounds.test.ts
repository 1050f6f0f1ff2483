/**
 * Every decoder of both codecs, on arbitrary bytes: it throws nothing but its codec's own error
 * type, reads nothing past the end of the buffer it was given (the answer is the same whatever
 * bytes follow in memory), and its output is bounded by its input.
 */
import fc from 'fast-check';
import { fuzzParams } from './fuzzParams';
import * as pg from '../../protocols/postgres';
import { ScramError, ScramSha256Client } from '../../protocols/postgres/scram';
import { readCString, readLenientText } from '../../protocols/postgres/text';
import * as my from '../../protocols/mysql';

type Decoder = [name: string, decode: (b: Buffer) => unknown];

/** The decoder's answer, or its error as `{ error: message }`; any other error type fails the property. */
function outcome(decode: (b: Buffer) => unknown, b: Buffer, allowed: Function[]): unknown {
  try {
    return decode(b);
  } catch (err) {
    if (!allowed.some((t) => err instanceof t)) throw err;
    return { error: (err as Error).message };
  }
}

/** How many bytes, characters and entries an answer holds. */
function size(v: unknown, seen = new Set<unknown>()): number {
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return 1;
  if (typeof v === 'string') return v.length;
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return v.length;
  if (typeof v === 'function' || seen.has(v)) return 0;
  seen.add(v);
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + 1 + size(x, seen), 0);
  if (v instanceof Map) return [...v.entries()].reduce((n, [k, x]) => n + size(k, seen) + size(x, seen), 0);
  return Object.entries(v as object).reduce((n, [k, x]) => n + k.length + size(x, seen), 0);
}

/** Normalises an answer for comparison: buffers as hex, class instances as plain records. */
function plain(v: unknown): unknown {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return `hex:${Buffer.from(v).toString('hex')}`;
  if (typeof v === 'bigint') return `${v}n`;
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Map) return [...v.entries()].map(([k, x]) => [k, plain(x)]);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) out[k] = plain((v as Record<string, unknown>)[k]);
    // Lazily decoded fields (getters on the prototype) count too.
    for (const [k, d] of Object.entries(Object.getOwnPropertyDescriptors(Object.getPrototypeOf(v) ?? {}))) {
      if (d.get && k !== '__proto__') {
        try {
          out[k] = plain((v as Record<string, unknown>)[k]);
        } catch (err) {
          out[k] = { error: (err as Error).message };
        }
      }
    }
    return out;
  }
  return v;
}

/** Embeds `bytes` in a larger allocation, followed by `tail`, and returns the view of just `bytes`. */
function viewBefore(bytes: Uint8Array, tail: Uint8Array): Buffer {
  const backing = Buffer.concat([Buffer.from([0xaa, 0xbb]), Buffer.from(bytes), Buffer.from(tail)]);
  return backing.subarray(2, 2 + bytes.length);
}

function checkDecoders(decoders: Decoder[], allowed: Function[], maxLength: number): void {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength }), fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes, tailA, tailB) => {
      for (const [name, decode] of decoders) {
        const a = outcome(decode, viewBefore(bytes, tailA), allowed);
        const b = outcome(decode, viewBefore(bytes, tailB), allowed);
        // Never read past the end: the bytes after the view make no difference.
        expect({ name, answer: plain(b) }).toEqual({ name, answer: plain(a) });
        // Bounded output: no more than the input (plus field names and a fixed overhead).
        expect({ name, size: size(a) <= 4 * bytes.length + 1024 }).toEqual({ name, size: true });
      }
    }),
    fuzzParams(400),
  );
}

const mysqlCaps = [my.GATEWAY_CAPABILITIES, 0, 0xffffffff, (my.GATEWAY_CAPABILITIES & ~my.CLIENT_DEPRECATE_EOF) >>> 0];

test('PostgreSQL decoders: only ProtocolError, nothing read past the end, bounded output', () => {
  const decoders: Decoder[] = [
    ['decodeStartupPacket', pg.decodeStartupPacket],
    ['decodePasswordMessage', pg.decodePasswordMessage],
    ['decodeQuery', pg.decodeQuery],
    ['decodeParse', pg.decodeParse],
    ['decodeErrorFields', pg.decodeErrorFields],
    ['decodeReadyForQuery', pg.decodeReadyForQuery],
    ['decodeReadyForQueryStatus', (b) => pg.decodeReadyForQueryStatus(b.length, b[0])],
    ['decodeCommandComplete', pg.decodeCommandComplete],
    ['decodeParameterStatus', pg.decodeParameterStatus],
    ['decodeBackendKeyData', pg.decodeBackendKeyData],
    ['decodeAuthentication', pg.decodeAuthentication],
    ['decodeAuthenticationRequest', pg.decodeAuthenticationRequest],
    ['decodeDataRow', pg.decodeDataRow],
    ['decodeNegotiateProtocolVersion', pg.decodeNegotiateProtocolVersion],
    ['readCString', (b) => readCString(b, b.length > 0 ? b[0] % (b.length + 1) : 0, 'field')],
    ['readLenientText', (b) => readLenientText(b, b.length > 0 ? b[0] % (b.length + 1) : 0)],
  ];
  checkDecoders(decoders, [pg.ProtocolError], 300);
});

test('SCRAM server messages (from a hostile upstream): only ScramError, bounded', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1'))), fc.boolean(), (msg, prefixed) => {
      const c = new ScramSha256Client({ nonce: 'fyko+d2lbbFgONRv9qkxdawL' });
      c.clientFirstMessage();
      const first = prefixed ? `r=fyko+d2lbbFgONRv9qkxdawL${msg}` : msg;
      try {
        const r = c.receiveServerFirst(first);
        expect(r.salt.length).toBeLessThanOrEqual(first.length);
        c.clientFinalMessage(Buffer.alloc(32, 1));
        c.receiveServerFinal(msg);
      } catch (err) {
        if (!(err instanceof ScramError)) throw err;
      }
    }),
    fuzzParams(400),
  );
});

test('MySQL decoders: only their typed errors, nothing read past the end, bounded output', () => {
  const decoders: Decoder[] = [
    ['decodeHandshakeV10', my.decodeHandshakeV10],
    ['decodeSslRequest', my.decodeSslRequest],
    ['decodeAuthSwitchRequest', my.decodeAuthSwitchRequest],
    ['decodeAuthMoreData', my.decodeAuthMoreData],
    ['decodeClearPassword', my.decodeClearPassword],
    ['decodeErr', my.decodeErr],
    ['decodeCommand', (b) => my.decodeCommand(b)],
    ['decodeCommand (a prefix of a longer packet)', (b) => my.decodeCommand(b, b.length + 1000)],
    ['readLenencInt', (b) => my.readLenencInt(b, 0)],
    ['readLenencNumber', (b) => my.readLenencNumber(b, 0, 1 << 20, 'n')],
    ['readLenencBytes', (b) => my.readLenencBytes(b, 0)],
    ['readLenencString', (b) => my.readLenencString(b, 0, 's', 100)],
    ['PayloadReader', (b) => {
      const r = new my.PayloadReader(b, 'fuzz');
      return [r.u8('a'), r.lenencNumber('b', 1000), r.nulString('c', 50, true), r.lenencString('d', 100), r.bytes(Math.min(3, r.remaining), 'e'), r.rest()];
    }],
    ...mysqlCaps.flatMap((c): Decoder[] => [
      [`decodeHandshakeResponse41 caps=${c}`, (b) => my.decodeHandshakeResponse41(b, c)],
      [`decodeOk caps=${c}`, (b) => my.decodeOk(b, c)],
      [`decodeEof caps=${c}`, (b) => my.decodeEof(b, c)],
    ]),
  ];
  checkDecoders(decoders, [my.MysqlDecodeError, my.PacketError, my.ResponseError], 300);
});
