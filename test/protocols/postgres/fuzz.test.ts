/** Property-based fuzzing (fast-check): no input crashes or hangs the codec; valid streams survive any chunking. */
import fc from 'fast-check';
import { fuzzParams } from '../fuzzParams';
import {
  backendKeyData,
  decodeAuthentication,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeErrorFields,
  decodeNegotiateProtocolVersion,
  decodeParameterStatus,
  decodeParse,
  decodePasswordMessage,
  decodeQuery,
  decodeReadyForQuery,
  decodeStartupPacket,
  encodeMessage,
  errorResponse,
  FrameError,
  negotiateProtocolVersion,
  noticeResponse,
  parameterStatus,
  PgFramer,
  ProtocolError,
  readyForQuery,
} from '../../../protocols/postgres';
import { EMPTY } from './golden';


/** Splits bytes at the given (unsorted, possibly out-of-range) cut points. */
function chunk(bytes: Uint8Array, cuts: number[]): Buffer[] {
  const buf = Buffer.from(bytes);
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

const cuts = fc.array(fc.nat(), { maxLength: 12 });
/** Capture policy per type: whole body, -1 (skip), or a fixed prefix. */
const capturePolicy = fc.func(fc.oneof(fc.constant(-1), fc.constant(Infinity), fc.integer({ min: 0, max: 64 })));
const noNul = fc.string({ unit: 'binary', maxLength: 40 }).map((s) => s.replace(/\0/g, ''));

function expectOnly(errorTypes: Function[], fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!errorTypes.some((t) => err instanceof t)) throw err;
  }
}

test('framer: random bytes in random chunks throw only FrameError and honour capture', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), cuts, fc.boolean(), fc.integer({ min: 0, max: 300 }), capturePolicy, (bytes, c, startup, max, capture) => {
      const f = new PgFramer({ startup, maxBodyLength: max, capture });
      expectOnly([FrameError], () => {
        for (const part of chunk(bytes, c)) {
          let frames = f.push(part);
          while (frames.length > 0) {
            for (const fr of frames) {
              const want = capture(fr.type);
              expect(want).not.toBe(-1);
              expect(fr.body.length).toBe(Math.min(fr.bodyLength, Math.max(0, want)));
              expect(fr.bodyLength).toBeLessThanOrEqual(max);
              if (fr.type === 0) expectOnly([ProtocolError], () => decodeStartupPacket(fr.body));
            }
            if (f.inStartupMode && frames.length > 0 && bytes[0] % 2 === 0) f.expectTyped();
            frames = f.push(EMPTY);
          }
          expect(f.buffered).toBeLessThanOrEqual(bytes.length);
        }
      });
    }),
    fuzzParams(300),
  );
});

const message = fc.record({ type: fc.integer({ min: 0x20, max: 0x7e }), body: fc.uint8Array({ maxLength: 200 }) });

test('framer: any valid message sequence survives any chunking', () => {
  fc.assert(
    fc.property(fc.array(message, { maxLength: 20 }), cuts, capturePolicy, (msgs, c, capture) => {
      const stream = Buffer.concat(msgs.map((m) => encodeMessage(m.type, Buffer.from(m.body))));
      const f = new PgFramer({ maxBodyLength: 200, capture });
      const got = chunk(stream, c).flatMap((part) => f.push(part).map((x) => ({ type: x.type, bodyLength: x.bodyLength, body: Buffer.from(x.body) })));
      const expected = msgs
        .filter((m) => capture(m.type) !== -1)
        .map((m) => ({ type: m.type, bodyLength: m.body.length, body: Buffer.from(m.body).subarray(0, Math.max(0, capture(m.type))) }));
      expect(got).toEqual(expected);
      expect(f.atBoundary).toBe(true);
      expect(f.buffered).toBe(0);
    }),
    fuzzParams(300),
  );
});

test('framer: startup packets then typed messages survive any chunking', () => {
  const param = fc.tuple(noNul.filter((s) => s.length > 0), noNul);
  fc.assert(
    fc.property(fc.array(param, { maxLength: 8 }), fc.array(message, { maxLength: 8 }), cuts, (params, msgs, c) => {
      const unique = new Map(params.map(([k, v]) => [k, v]));
      const kv = Buffer.concat([...[...unique].map(([k, v]) => Buffer.from(`${k}\0${v}\0`)), Buffer.from([0])]);
      const startup = Buffer.alloc(8);
      startup.writeUInt32BE(8 + kv.length, 0);
      startup.writeUInt32BE(196608, 4);
      const ssl = Buffer.from('0000000804d2162f', 'hex');
      const stream = Buffer.concat([ssl, startup, kv, ...msgs.map((m) => encodeMessage(m.type, Buffer.from(m.body)))]);
      fc.pre(8 + kv.length <= 10000);
      const f = new PgFramer({ startup: true, maxBodyLength: 10000 });
      const kinds: string[] = [];
      for (const part of chunk(stream, c)) {
        let frames = f.push(part);
        while (frames.length > 0) {
          for (const fr of frames) {
            if (f.inStartupMode) {
              const p = decodeStartupPacket(fr.body);
              kinds.push(p.kind);
              if (p.kind === 'startup') {
                expect(Object.entries(p.parameters)).toEqual([...unique].filter(([k]) => !k.startsWith('_pq_.')));
                f.expectTyped();
              }
            } else kinds.push(String.fromCharCode(fr.type));
          }
          frames = f.push(EMPTY);
        }
      }
      expect(kinds).toEqual(['ssl', 'startup', ...msgs.map((m) => String.fromCharCode(m.type))]);
    }),
    fuzzParams(300),
  );
});

test('decoders: random bodies throw only ProtocolError', () => {
  const decoders: ((b: Buffer) => unknown)[] = [
    decodeStartupPacket,
    decodePasswordMessage,
    decodeErrorFields,
    decodeReadyForQuery,
    decodeCommandComplete,
    decodeParameterStatus,
    decodeBackendKeyData,
    decodeAuthentication,
    decodeNegotiateProtocolVersion,
  ];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const b = Buffer.from(bytes);
      for (const d of decoders) expectOnly([ProtocolError], () => d(b));
      // Audit decoders take any prefix and never throw.
      expect(typeof decodeQuery(b)).toBe('string');
      expect(typeof decodeParse(b).query).toBe('string');
    }),
    fuzzParams(1000),
  );
});

test('decoders: structured-but-wrong startup packets throw only ProtocolError', () => {
  const code = fc.constantFrom(196608, 0x30002, 80877102, 80877103, 80877104, 0x20000);
  const piece = fc.oneof(noNul, fc.constant('\0'), fc.constant('_pq_.'), fc.constant('user'));
  fc.assert(
    fc.property(code, fc.array(piece, { maxLength: 20 }), (c, pieces) => {
      const b = Buffer.concat([Buffer.from([c >>> 24, (c >>> 16) & 255, (c >>> 8) & 255, c & 255]), Buffer.from(pieces.join(''))]);
      expectOnly([ProtocolError], () => decodeStartupPacket(b));
    }),
    fuzzParams(1000),
  );
});

describe('round trips', () => {
  test('ParameterStatus', () => {
    fc.assert(
      fc.property(noNul, noNul, (name, value) => {
        expect(decodeParameterStatus(parameterStatus(name, value).subarray(5))).toEqual({ name, value });
      }),
      fuzzParams(300),
    );
  });

  test('ErrorResponse and NoticeResponse', () => {
    fc.assert(
      fc.property(noNul, noNul, noNul, fc.option(noNul, { nil: undefined }), fc.option(noNul, { nil: undefined }), (severity, code, message, detail, hint) => {
        for (const enc of [errorResponse, noticeResponse]) {
          const decoded = decodeErrorFields(enc({ severity, code, message, detail, hint }).subarray(5));
          expect(decoded).toEqual({
            severity,
            severityNonLocalized: severity,
            code,
            message,
            ...(detail === undefined ? {} : { detail }),
            ...(hint === undefined ? {} : { hint }),
          });
        }
      }),
      fuzzParams(300),
    );
  });

  test('BackendKeyData, ReadyForQuery, NegotiateProtocolVersion', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        fc.uint8Array({ minLength: 4, maxLength: 256 }),
        fc.constantFrom('I' as const, 'T' as const, 'E' as const),
        fc.integer({ min: 0, max: 0xffff }),
        fc.array(noNul, { maxLength: 5 }),
        (pid, key, status, minor, options) => {
          expect(decodeBackendKeyData(backendKeyData(pid, Buffer.from(key)).subarray(5))).toEqual({ processId: pid, secretKey: Buffer.from(key) });
          expect(decodeReadyForQuery(readyForQuery(status).subarray(5))).toBe(status);
          expect(decodeNegotiateProtocolVersion(negotiateProtocolVersion(minor, options).subarray(5))).toEqual({
            major: 3,
            newestMinor: minor,
            unsupportedOptions: options,
          });
        },
      ),
      fuzzParams(300),
    );
  });
});
