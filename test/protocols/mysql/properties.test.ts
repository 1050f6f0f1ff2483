/** Property-based checks: hostile input only ever yields typed errors; encoders and decoders agree. */
import fc from 'fast-check';
import { fuzzParams } from '../fuzzParams';
import {
  CLIENT_DEPRECATE_EOF,
  CLIENT_SSL,
  COM_QUERY,
  COM_STMT_EXECUTE,
  COM_STMT_PREPARE,
  GATEWAY_CAPABILITIES,
  MAX_PACKET_PAYLOAD,
  MysqlDecodeError,
  PacketError,
  PacketFramer,
  ResponseError,
  ResponseTracker,
  decodeAuthSwitchRequest,
  decodeClearPassword,
  decodeCommand,
  decodeEof,
  decodeErr,
  decodeHandshakeResponse41,
  decodeHandshakeV10,
  decodeOk,
  decodeSslRequest,
  encodeAuthSwitchRequest,
  encodeErr,
  encodeHandshakeResponse41,
  encodeHandshakeV10,
  encodeOk,
  encodePacket,
  encodeSslRequest,
  readLenencInt,
  writeLenencInt,
} from '../../../protocols/mysql';

const typed = (e: unknown) => e instanceof MysqlDecodeError || e instanceof PacketError || e instanceof ResponseError;
function onlyTypedErrors(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!typed(e)) throw e;
  }
}
const bytes = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a));
const caps = fc.oneof(fc.constant(GATEWAY_CAPABILITIES), fc.integer({ min: 0, max: 0xffffffff }));

describe('decoders on random bytes', () => {
  it('throw only typed errors', () => {
    fc.assert(
      fc.property(bytes, caps, (b, c) => {
        for (const f of [
          () => decodeHandshakeV10(b),
          () => decodeHandshakeResponse41(b, c),
          () => decodeSslRequest(b),
          () => decodeAuthSwitchRequest(b),
          () => decodeClearPassword(b),
          () => decodeOk(b, c),
          () => decodeErr(b),
          () => decodeEof(b, c),
          () => decodeCommand(b),
          () => readLenencInt(b, 0),
        ]) onlyTypedErrors(f);
      }),
      fuzzParams(3000),
    );
  });
  it('HandshakeResponse41 variants built from a valid one, then corrupted, throw only typed errors', () => {
    const valid = encodeHandshakeResponse41({
      capabilities: GATEWAY_CAPABILITIES,
      maxPacketSize: 1 << 24,
      characterSet: 45,
      username: 'u',
      authResponse: Buffer.alloc(20, 1),
      database: 'db',
      authPluginName: 'mysql_native_password',
      connectAttributes: { a: 'b' },
    });
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(valid.length), (at, v, cut) => {
        const b = Buffer.from(valid);
        b[at] = v;
        onlyTypedErrors(() => decodeHandshakeResponse41(b.subarray(0, cut), GATEWAY_CAPABILITIES));
      }),
      fuzzParams(3000),
    );
  });
});

describe('framer on random streams', () => {
  it('never throws untyped errors and buffers at most a header plus the capture', () => {
    fc.assert(
      fc.property(fc.array(bytes, { maxLength: 20 }), fc.integer({ min: 0, max: MAX_PACKET_PAYLOAD }), fc.nat(64), (chunks, max, keep) => {
        const framer = new PacketFramer({ maxPayloadLength: max, capture: () => keep });
        onlyTypedErrors(() => {
          for (const c of chunks) {
            for (const p of framer.push(c)) expect(p.payload.length).toBeLessThanOrEqual(Math.min(keep, p.payloadLength));
            expect(framer.buffered).toBeLessThanOrEqual(4 + keep);
          }
        });
      }),
      fuzzParams(100),
    );
  });
  it('random chunkings of encoded packets yield the same packets', () => {
    fc.assert(
      fc.property(fc.array(bytes, { minLength: 1, maxLength: 10 }), fc.array(fc.nat(2000), { maxLength: 10 }), (payloads, cuts) => {
        const wire = Buffer.concat(payloads.map((p, i) => encodePacket(i, p)));
        const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        const framer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD });
        let prev = 0;
        const out = [...points, wire.length].flatMap((p) => {
          const r = framer.push(wire.subarray(prev, p));
          prev = p;
          return r;
        });
        expect(out.map((p) => p.payload.toString('hex'))).toEqual(payloads.map((p) => p.toString('hex')));
        expect(out.map((p) => p.sequenceId)).toEqual(payloads.map((_, i) => i));
        expect(framer.atBoundary).toBe(true);
      }),
      fuzzParams(100),
    );
  });
});

describe('PacketFramer.scan', () => {
  it('hands out the same packets as push, whatever the chunking and capture', () => {
    fc.assert(
      fc.property(fc.array(bytes, { minLength: 1, maxLength: 10 }), fc.array(fc.nat(2000), { maxLength: 10 }), fc.integer({ min: -1, max: 40 }), (payloads, cuts, keep) => {
        const wire = Buffer.concat(payloads.map((p, i) => encodePacket(i, p)));
        const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        const capture = () => keep;
        const pushed = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD, capture });
        const scanned = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD, capture });
        const a: unknown[] = [];
        const b: unknown[] = [];
        let prev = 0;
        for (const p of [...points, wire.length]) {
          const chunk = wire.subarray(prev, p);
          prev = p;
          for (const q of pushed.push(chunk)) a.push([q.sequenceId, q.payloadLength, q.payload.toString('hex'), q.continuation]);
          scanned.scan(chunk, (seq, len, data, start, end, continuation) => {
            expect(start).toBeGreaterThanOrEqual(0);
            expect(end).toBeLessThanOrEqual(data.length);
            expect(end - start).toBe(keep < 0 ? -1 : Math.min(keep, len));
            b.push([seq, len, data.toString('hex', start, end), continuation]);
          });
          expect(scanned.buffered).toBe(pushed.buffered);
          expect(scanned.atBoundary).toBe(pushed.atBoundary);
        }
        expect(b).toEqual(a);
        expect(a).toHaveLength(keep < 0 ? 0 : payloads.length);
      }),
      fuzzParams(100),
    );
  });
});

describe('response tracker on random packets', () => {
  it('throws only typed errors and stays bounded', () => {
    fc.assert(
      fc.property(fc.constantFrom(COM_QUERY, COM_STMT_PREPARE, COM_STMT_EXECUTE, 0x0e, 0x09, 0x04, 0x11, 0x1c), caps, fc.array(bytes, { maxLength: 30 }), (cmd, c, packets) => {
        const t = new ResponseTracker(c);
        onlyTypedErrors(() => {
          t.begin(cmd);
          for (const p of packets) {
            if (t.onPacket(p, p.length) === 'done') {
              expect(t.outcome!.results.length).toBeLessThanOrEqual(64);
              t.begin(cmd);
            }
          }
        });
      }),
      fuzzParams(3000),
    );
  });
  it('onPacketAt reads only data[start, end): same results and errors as onPacket on the prefix alone', () => {
    fc.assert(
      fc.property(fc.constantFrom(COM_QUERY, COM_STMT_PREPARE, COM_STMT_EXECUTE, 0x0e, 0x09, 0x04, 0x11, 0x1c), caps, fc.array(fc.tuple(fc.uint8Array({ maxLength: 12 }), bytes, fc.uint8Array({ maxLength: 12 })), { maxLength: 30 }), (cmd, c, packets) => {
        const run = (inPlace: boolean): unknown[] => {
          const t = new ResponseTracker(c);
          const log: unknown[] = [];
          try {
            t.begin(cmd);
            for (const [before, p, after] of packets) {
              const r = inPlace ? t.onPacketAt(Buffer.concat([before, p, after]), before.length, before.length + p.length, p.length) : t.onPacket(Buffer.from(p), p.length);
              log.push(r);
              if (r === 'done') {
                log.push(t.outcome);
                t.begin(cmd);
              }
            }
          } catch (e) {
            if (!typed(e)) throw e;
            log.push((e as Error).message);
          }
          return log;
        };
        expect(run(true)).toEqual(run(false));
      }),
      fuzzParams(2000),
    );
  });
  it('skips 16 MiB continuation packets inside rows', () => {
    for (const deprecateEof of [false, true]) {
      const c = deprecateEof ? GATEWAY_CAPABILITIES : (GATEWAY_CAPABILITIES & ~CLIENT_DEPRECATE_EOF) >>> 0;
      const t = new ResponseTracker(c);
      t.begin(COM_QUERY);
      expect(t.onPacket(Buffer.from([1]), 1)).toBe('more'); // 1 column
      expect(t.onPacket(Buffer.from([3, 0x64, 0x65, 0x66]), 40)).toBe('more'); // column definition
      if (!deprecateEof) expect(t.onPacket(Buffer.from([0xfe, 0, 0, 2, 0]), 5)).toBe('more');
      expect(t.onPacket(Buffer.from([0xfd]), MAX_PACKET_PAYLOAD)).toBe('more'); // row, split
      expect(t.onPacket(Buffer.from([0xfe, 0, 0, 2, 0]), 5)).toBe('more'); // its tail: not a terminator
      const end = deprecateEof ? encodeOk({ header: 0xfe, statusFlags: 2 }, c) : Buffer.from([0xfe, 0, 0, 2, 0]);
      expect(t.onPacket(end, end.length)).toBe('done');
      expect(t.outcome?.results[0]).toMatchObject({ kind: 'rows', rows: 1, columns: 1 });
    }
  });
});

describe('round trips', () => {
  it('length-encoded integers', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (n) => {
        const w = writeLenencInt(n);
        expect(readLenencInt(w, 0)).toEqual({ value: n, next: w.length });
      }),
      fuzzParams(100),
    );
  });
  const text = fc.string({ maxLength: 40 }).filter((s) => !s.includes('\0'));
  it('OK and ERR packets', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.integer({ min: 0, max: 0xbfff }), fc.integer({ min: 0, max: 0xffff }), text, (a, id, st, w, info) => {
        const o = decodeOk(encodeOk({ affectedRows: a, lastInsertId: id, statusFlags: st, warnings: w, info }, GATEWAY_CAPABILITIES), GATEWAY_CAPABILITIES);
        expect(o).toEqual({ affectedRows: a, lastInsertId: id, statusFlags: st, warnings: w, info });
      }),
      fuzzParams(100),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.stringMatching(/^[0-9A-Z]{5}$/), fc.string({ maxLength: 80 }), (code, sqlState, message) => {
        expect(decodeErr(encodeErr({ code, sqlState, message }))).toEqual({ code, sqlState, message });
      }),
      fuzzParams(100),
    );
  });
  it('greeting, SSLRequest, HandshakeResponse41, AuthSwitchRequest', () => {
    fc.assert(
      fc.property(text, fc.nat(0xffffffff), fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.nat(0xffffffff), fc.nat(255), fc.nat(0xffff), text, (v, id, scr, c, cs, st, plugin) => {
        const h = { serverVersion: v, connectionId: id, authPluginData: Buffer.from(scr), capabilities: (c | 0x00088201) >>> 0, characterSet: cs, statusFlags: st, authPluginName: plugin };
        const d = decodeHandshakeV10(encodeHandshakeV10(h));
        expect({ ...d, mariadbCapabilities: undefined }).toEqual({ ...h, mariadbCapabilities: undefined });
      }),
      fuzzParams(100),
    );
    fc.assert(
      fc.property(fc.nat(0xffffffff), fc.nat(0xffffffff), fc.nat(255), (c, m, cs) => {
        expect(decodeSslRequest(encodeSslRequest({ capabilities: c, maxPacketSize: m, characterSet: cs }))).toEqual({ capabilities: (c | CLIENT_SSL) >>> 0, maxPacketSize: m, characterSet: cs });
      }),
      fuzzParams(100),
    );
    fc.assert(
      fc.property(text, fc.uint8Array({ maxLength: 600 }), text, text, fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 5 }), (user, auth, db, plugin, attrs) => {
        const r = { capabilities: GATEWAY_CAPABILITIES, maxPacketSize: 1 << 24, characterSet: 45, username: user, authResponse: Buffer.from(auth), database: db, authPluginName: plugin, connectAttributes: attrs };
        const d = decodeHandshakeResponse41(encodeHandshakeResponse41(r), GATEWAY_CAPABILITIES);
        expect({ ...d, connectAttributes: { ...d.connectAttributes } }).toEqual(r);
      }),
      fuzzParams(100),
    );
    fc.assert(
      fc.property(text, fc.uint8Array({ maxLength: 40 }), (name, data) => {
        expect(decodeAuthSwitchRequest(encodeAuthSwitchRequest(name, Buffer.from(data)))).toEqual({ pluginName: name, pluginData: Buffer.from(data) });
      }),
      fuzzParams(100),
    );
  });
});
