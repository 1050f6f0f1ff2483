import {
  BackendType,
  captureTable,
  encodeMessage,
  Frame,
  FrameError,
  MAX_STARTUP_PACKET_LENGTH,
  PgFramer,
  readyForQuery,
} from '../../../protocols/postgres';
import { EMPTY, frameChunks, GOLDEN_STREAMS, goldenBytes } from './golden';

const hexFrames = (frames: Frame[]) => frames.map((f) => `${f.type}:${f.bodyLength}:${f.body.toString('hex')}`);

function startupPacket(code: number, rest: Buffer = EMPTY): Buffer {
  const b = Buffer.alloc(8 + rest.length);
  b.writeUInt32BE(8 + rest.length, 0);
  b.writeUInt32BE(code, 4);
  rest.copy(b, 8);
  return b;
}

function expectFrameError(fn: () => unknown, code: FrameError['code']): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FrameError);
    expect((err as FrameError).code).toBe(code);
    expect((err as FrameError).sqlState).toBe('08P01');
    return;
  }
  throw new Error(`expected FrameError ${code}`);
}

describe('chunk boundaries on golden streams', () => {
  for (const g of GOLDEN_STREAMS) {
    const bytes = goldenBytes(g);
    if (bytes.length === 0) continue;
    const whole = hexFrames(frameChunks(g.side, [bytes]).frames);

    test(`${g.file}: split at every offset`, () => {
      for (let i = 0; i <= bytes.length; i++) {
        const { frames, framer } = frameChunks(g.side, [bytes.subarray(0, i), bytes.subarray(i)]);
        expect(hexFrames(frames)).toEqual(whole);
        expect(framer.atBoundary).toBe(true);
      }
    });

    test(`${g.file}: 1-byte chunks`, () => {
      const chunks = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
      expect(hexFrames(frameChunks(g.side, chunks).frames)).toEqual(whole);
    });

    test(`${g.file}: three-way splits`, () => {
      const step = Math.max(1, Math.floor(bytes.length / 40));
      for (let i = 0; i < bytes.length; i += step) {
        for (let j = i; j < bytes.length; j += step) {
          const chunks = [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)];
          expect(hexFrames(frameChunks(g.side, chunks).frames)).toEqual(whole);
        }
      }
    });
  }
});

describe('length bounds', () => {
  test('startup length below 8 is refused', () => {
    for (const len of [0, 4, 7]) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(len);
      expectFrameError(() => new PgFramer({ startup: true, maxBodyLength: 1 << 20 }).push(b), 'length_too_small');
    }
  });

  test('startup length above 10000 is refused even with a larger maxBodyLength', () => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(MAX_STARTUP_PACKET_LENGTH + 1);
    expectFrameError(() => new PgFramer({ startup: true, maxBodyLength: 1 << 20 }).push(b), 'length_too_large');
    b.writeUInt32BE(MAX_STARTUP_PACKET_LENGTH);
    expect(new PgFramer({ startup: true, maxBodyLength: 1 << 20 }).push(b)).toEqual([]);
  });

  test('a TLS ClientHello or HTTP request in place of a startup packet is refused at once', () => {
    expectFrameError(() => new PgFramer({ startup: true, maxBodyLength: 1 << 20 }).push(Buffer.from('160301020001', 'hex')), 'length_too_large');
    expectFrameError(() => new PgFramer({ startup: true, maxBodyLength: 1 << 20 }).push(Buffer.from('GET / HTTP/1.1\r\n')), 'length_too_large');
  });

  test('typed length below 4 is refused', () => {
    expectFrameError(() => new PgFramer({ maxBodyLength: 100 }).push(Buffer.from([0x51, 0, 0, 0, 3])), 'length_too_small');
  });

  test('typed body above maxBodyLength is refused from the header alone', () => {
    const f = new PgFramer({ maxBodyLength: 100 });
    expect(f.push(encodeMessage(0x51, Buffer.alloc(100)))).toHaveLength(1);
    expectFrameError(() => f.push(Buffer.from([0x51, 0, 0, 0, 105])), 'length_too_large');
    expectFrameError(() => new PgFramer({ maxBodyLength: 100 }).push(Buffer.from([0x51, 0xff, 0xff, 0xff, 0xff])), 'length_too_large');
  });

  test('errors are sticky: the framer cannot resynchronise after a bad length', () => {
    const f = new PgFramer({ maxBodyLength: 10 });
    expectFrameError(() => f.push(Buffer.from([0x51, 0, 0, 0, 1])), 'length_too_small');
    expectFrameError(() => f.push(readyForQuery('I')), 'length_too_small');
  });
});

describe('capture and skip', () => {
  const big = encodeMessage(BackendType.DataRow, Buffer.alloc(5000, 7));
  const rfq = readyForQuery('T');

  test('body never longer than capture; bodyLength is the full length', () => {
    for (const split of [1, 3, 5, 6, 100, 4999, 5004]) {
      const f = new PgFramer({ maxBodyLength: 1 << 20, capture: (t) => (t === BackendType.DataRow ? 16 : Infinity) });
      const stream = Buffer.concat([big, rfq]);
      const frames = [...f.push(stream.subarray(0, split)), ...f.push(stream.subarray(split))];
      expect(frames).toHaveLength(2);
      expect(frames[0]).toMatchObject({ type: BackendType.DataRow, bodyLength: 5000 });
      expect(frames[0].body).toEqual(Buffer.alloc(16, 7));
      expect(frames[1].body).toEqual(Buffer.from('T'));
    }
  });

  test('capture -1 skips a message without emitting a frame', () => {
    const f = new PgFramer({ maxBodyLength: 1 << 20, capture: (t) => (t === BackendType.DataRow ? -1 : Infinity) });
    const frames = f.push(Buffer.concat([big, big, rfq, big]));
    expect(frames.map((x) => String.fromCharCode(x.type))).toEqual(['Z']);
    expect(f.atBoundary).toBe(true);
  });

  test('scan() hands a prefix that arrived whole as a range of the chunk itself, and a split one as a copy', () => {
    const f = new PgFramer({ maxBodyLength: 1 << 20, capture: captureTable((t) => (t === BackendType.DataRow ? 4 : -1)) });
    const row = encodeMessage(BackendType.DataRow, Buffer.from('abcdefgh'));
    const chunk = Buffer.concat([row, rfq, row]);
    const seen: Array<{ same: boolean; start: number; end: number; text: string }> = [];
    const record = (_type: number, _len: number, data: Buffer, start: number, end: number): void => {
      seen.push({ same: data === chunk, start, end, text: data.toString('latin1', start, end) });
    };
    f.scan(chunk, record);
    expect(seen).toEqual([
      { same: true, start: 5, end: 9, text: 'abcd' },
      { same: true, start: 13 + 6 + 5, end: 13 + 6 + 9, text: 'abcd' },
    ]);
    seen.length = 0;
    f.scan(row.subarray(0, 7), record); // 2 of the 4 captured bytes
    f.scan(row.subarray(7), record);
    expect(seen).toEqual([{ same: false, start: 0, end: 4, text: 'abcd' }]);
  });

  test('a capture table behaves as the function it was made from', () => {
    const fn = (t: number): number => (t === BackendType.DataRow ? 3 : t === BackendType.ReadyForQuery ? Infinity : t === BackendType.CommandComplete ? -7 : -1);
    const stream = Buffer.concat([big, rfq, encodeMessage(BackendType.CommandComplete, Buffer.from('SELECT 1\0')), big]);
    for (const split of [0, 2, 5, 4000, 5010, stream.length]) {
      const run = (capture: Parameters<typeof captureTable>[0] | ReturnType<typeof captureTable>) => {
        const f = new PgFramer({ maxBodyLength: 1 << 20, capture });
        return hexFrames([...f.push(stream.subarray(0, split)), ...f.push(stream.subarray(split))]);
      };
      expect(run(captureTable(fn))).toEqual(run(fn));
      expect(run(fn)).toEqual([`${BackendType.DataRow}:5000:070707`, `${BackendType.ReadyForQuery}:1:54`, `${BackendType.CommandComplete}:9:`, `${BackendType.DataRow}:5000:070707`]);
    }
  });

  test('capture 0 emits an empty body', () => {
    const f = new PgFramer({ maxBodyLength: 1 << 20, capture: () => 0 });
    expect(f.push(big)).toEqual([{ type: BackendType.DataRow, bodyLength: 5000, body: EMPTY }]);
  });

  test('buffered and atBoundary follow a partial message', () => {
    const f = new PgFramer({ maxBodyLength: 1 << 20, capture: () => -1 });
    expect(f.atBoundary).toBe(true);
    f.push(big.subarray(0, 3));
    expect([f.buffered, f.atBoundary]).toEqual([3, false]);
    f.push(big.subarray(3, 2000));
    expect([f.buffered, f.atBoundary]).toEqual([2000, false]);
    f.push(big.subarray(2000));
    expect([f.buffered, f.atBoundary]).toEqual([0, true]);
  });

  test('a huge skipped message holds no memory beyond the header', () => {
    const f = new PgFramer({ maxBodyLength: 2 ** 30, capture: () => -1 });
    const header = Buffer.from([0x64, 0x3f, 0xff, 0xff, 0xff]);
    f.push(header);
    const chunk = Buffer.alloc(65536);
    for (let i = 0; i < 100; i++) f.push(chunk);
    expect(f.buffered).toBe(5 + 100 * 65536);
  });
});

describe('startup phase', () => {
  const ssl = startupPacket(80877103);
  const startup = startupPacket(196608, Buffer.from('user\0alice\0\0'));
  const query = encodeMessage(0x51, Buffer.from('select 1\0'));

  test('plaintext sent behind an SSLRequest is visible as buffered bytes (CVE-2021-23214)', () => {
    const f = new PgFramer({ startup: true, maxBodyLength: 1 << 20 });
    const frames = f.push(Buffer.concat([ssl, startup]));
    expect(frames).toHaveLength(1);
    expect(frames[0].bodyLength).toBe(4);
    expect(f.buffered).toBe(startup.length);
    expect(f.atBoundary).toBe(false);
  });

  test('an SSLRequest alone leaves nothing buffered', () => {
    const f = new PgFramer({ startup: true, maxBodyLength: 1 << 20 });
    expect(f.push(ssl)).toHaveLength(1);
    expect([f.buffered, f.atBoundary]).toEqual([0, true]);
  });

  test('startup mode returns one packet per push; held bytes follow in order', () => {
    const f = new PgFramer({ startup: true, maxBodyLength: 1 << 20 });
    const gss = startupPacket(80877104);
    expect(f.push(Buffer.concat([gss, ssl])).map((x) => x.body.readUInt32BE(0))).toEqual([80877104]);
    expect(f.push(startup.subarray(0, 5)).map((x) => x.body.readUInt32BE(0))).toEqual([80877103]);
    expect(f.buffered).toBe(5);
    const last = f.push(startup.subarray(5));
    expect(last.map((x) => x.body.readUInt32BE(0))).toEqual([196608]);
  });

  test('typed messages pipelined behind the StartupMessage come out after expectTyped()', () => {
    const f = new PgFramer({ startup: true, maxBodyLength: 1 << 20 });
    expect(f.push(Buffer.concat([startup, query]))).toHaveLength(1);
    expect(f.buffered).toBe(query.length);
    f.expectTyped();
    expect(f.push(EMPTY).map((x) => [x.type, x.body.toString()])).toEqual([[0x51, 'select 1\0']]);
    expect(f.atBoundary).toBe(true);
  });

  test('a client flooding packets before the reply is stopped', () => {
    const f = new PgFramer({ startup: true, maxBodyLength: 1 << 20 });
    expect(f.push(Buffer.concat(Array(1200).fill(ssl)))).toHaveLength(1); // 9592 bytes held
    expectFrameError(() => f.push(Buffer.concat(Array(100).fill(ssl))), 'unexpected_data');
  });

  test('expectTyped() in the middle of a packet is a programming error', () => {
    const f = new PgFramer({ startup: true, maxBodyLength: 1 << 20 });
    f.push(startup.subarray(0, 2));
    expect(() => f.expectTyped()).toThrow(/middle/);
  });
});

test('frames that fit in one chunk are views (no copy); split ones are copies', () => {
  const msg = encodeMessage(0x51, Buffer.from('select 1\0'));
  const [view] = new PgFramer({ maxBodyLength: 100 }).push(msg);
  msg.fill(0x41, 5, 13);
  expect(view.body.toString()).toBe('AAAAAAAA\0');

  const f = new PgFramer({ maxBodyLength: 100 });
  const a = Buffer.from(encodeMessage(0x51, Buffer.from('select 1\0')));
  f.push(a.subarray(0, 7));
  const [copy] = f.push(a.subarray(7));
  a.fill(0x41);
  expect(copy.body.toString()).toBe('select 1\0');
});

test('rejects a bad maxBodyLength', () => {
  expect(() => new PgFramer({ maxBodyLength: -1 })).toThrow(RangeError);
});
