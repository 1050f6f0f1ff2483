/** Chunk-boundary invariance over the golden streams, and 16 MiB splitting. */
import { readdirSync } from 'node:fs';
import {
  COM_QUIT,
  COM_STMT_EXECUTE,
  MAX_PACKET_PAYLOAD,
  Packet,
  ResponseOutcome,
  ResponseTracker,
  decodeCommand,
  PacketError,
  PacketFramer,
  captureForResponse,
  encodePacket,
  joinPackets,
  packetCount,
} from '../../../protocols/mysql';
import { GOLDEN_DIR, frameChunks, loadGolden, replayCommands } from './golden';
import { decodeHandshakeResponse41, decodeHandshakeV10 } from '../../../protocols/mysql';

const GOLDEN_SESSIONS = ['mariadb-cli-session.hex', 'mysql2-session.hex', 'pymysql-session.hex', 'mysqldb-session.hex', 'deprecate-eof-client.hex', 'classic-eof-client.hex'];

/** A golden session's commands (after the login), the server's chunks answering them, and the negotiated capabilities. */
function goldenSession(file: string): { commands: Packet[]; server: Buffer[]; caps: number } {
  const conv = loadGolden(file);
  const greeting = decodeHandshakeV10(frameChunks([conv.server[0]])[0].payload);
  const response = decodeHandshakeResponse41(frameChunks([conv.client[0]])[0].payload, greeting.capabilities);
  return {
    commands: frameChunks(conv.client.slice(1)),
    server: conv.server.slice(2),
    caps: (greeting.capabilities & response.capabilities) >>> 0,
  };
}

const summary = (ps: Packet[]) => ps.map((p) => ({ seq: p.sequenceId, len: p.payloadLength, hex: p.payload.toString('hex'), last: p.last }));

describe('chunk boundaries on every golden stream', () => {
  const files = readdirSync(GOLDEN_DIR).filter((f) => f.endsWith('.hex'));
  it.each(files)('%s: every split offset and 1-byte chunks give the same packets', (file) => {
    const conv = loadGolden(file);
    for (const chunks of [conv.client, conv.server]) {
      const whole = Buffer.concat(chunks);
      const reference = summary(frameChunks([whole]));
      expect(reference.length).toBeGreaterThan(0);
      for (let at = 0; at <= whole.length; at++) {
        expect(summary(frameChunks([whole.subarray(0, at), whole.subarray(at)]))).toEqual(reference);
      }
      expect(summary(frameChunks([...whole].map((b) => Buffer.from([b]))))).toEqual(reference);
    }
  });

  it.each(GOLDEN_SESSIONS)('%s: response boundaries do not depend on chunking or on a short capture', (file) => {
    const { commands, server, caps } = goldenSession(file);
    const reference = replayCommands(commands, server, caps);
    // Boundaries are exact: they coincide with the chunks the server actually wrote.
    let end = 0;
    const chunkEnds = server.map((c) => (end += c.length));
    for (const b of reference.boundaries) expect(chunkEnds).toContain(b);
    expect(reference.boundaries[reference.boundaries.length - 1]).toBe(end);
    const whole = Buffer.concat(server);
    for (let at = 0; at <= whole.length; at += 7) {
      const r = replayCommands(commands, [whole.subarray(0, at), whole.subarray(at)], caps, captureForResponse);
      expect(r.boundaries).toEqual(reference.boundaries);
      expect(r.outcomes).toEqual(reference.outcomes);
    }
  });
});

/**
 * The relay's path: PacketFramer.scan + ResponseTracker.onPacketAt on the server's chunks,
 * prefixes read in place. Returns each response's outcome.
 */
function replayInPlace(commands: Packet[], serverChunks: Buffer[], capabilities: number): ResponseOutcome[] {
  const framer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD, capture: captureForResponse });
  const tracker = new ResponseTracker(capabilities);
  const outcomes: ResponseOutcome[] = [];
  let ci = 0;
  const startNext = (): void => {
    while (ci < commands.length) {
      const cmd = decodeCommand(commands[ci++].payload);
      if (cmd.command === COM_QUIT) continue;
      if (tracker.begin(cmd.command, { cursor: cmd.command === COM_STMT_EXECUTE && ResponseTracker.isCursorFlags(cmd.cursorFlags) }) === 'more') return;
      outcomes.push(tracker.outcome!);
    }
  };
  startNext();
  for (const chunk of serverChunks) {
    framer.scan(chunk, (_seq, payloadLength, data, start, end) => {
      if (tracker.onPacketAt(data, start, end, payloadLength) === 'done') {
        outcomes.push(tracker.outcome!);
        startNext();
      }
    });
  }
  expect(tracker.busy).toBe(false);
  expect(framer.atBoundary).toBe(true);
  return outcomes;
}

describe('scan + onPacketAt (the relay path) on the golden sessions', () => {
  it.each(GOLDEN_SESSIONS)('%s: same outcomes as push + onPacket, whole or split anywhere', (file) => {
    const { commands, server, caps } = goldenSession(file);
    const reference = replayCommands(commands, server, caps).outcomes;
    expect(replayInPlace(commands, server, caps)).toEqual(reference);
    const whole = Buffer.concat(server);
    expect(replayInPlace(commands, [whole], caps)).toEqual(reference);
    for (let at = 0; at <= whole.length; at += 3) {
      expect(replayInPlace(commands, [whole.subarray(0, at), whole.subarray(at)], caps)).toEqual(reference);
    }
  });
});

describe('PacketFramer', () => {
  it('keeps only the captured prefix and can drop packets', () => {
    const stream = Buffer.concat([encodePacket(0, Buffer.from('abcdef')), encodePacket(1, Buffer.from('xyz')), encodePacket(2, Buffer.alloc(0))]);
    const framer = new PacketFramer({ maxPayloadLength: 100, capture: (first) => (first === 0x78 /* x */ ? -1 : 2) });
    const out = framer.push(stream);
    expect(out.map((p) => [p.sequenceId, p.payloadLength, p.payload.toString()])).toEqual([
      [0, 6, 'ab'],
      [2, 0, ''],
    ]);
  });
  it('scan reads a prefix that lies in one chunk in place, and copies one that straddles chunks', () => {
    const a = encodePacket(0, Buffer.from('hello'));
    const b = encodePacket(1, Buffer.from('world!'));
    const chunk = Buffer.concat([a, b.subarray(0, 6)]);
    const framer = new PacketFramer({ maxPayloadLength: 100 });
    const seen: [number, number, boolean, number, number, string][] = [];
    const record = (seq: number, len: number, data: Buffer, start: number, end: number) => seen.push([seq, len, data === chunk, start, end, data.toString('latin1', start, end)]);
    framer.scan(chunk, record);
    expect(seen).toEqual([[0, 5, true, 4, 9, 'hello']]);
    framer.scan(b.subarray(6), record);
    expect(seen[1]).toEqual([1, 6, false, 0, 6, 'world!']);
    expect(framer.atBoundary).toBe(true);
  });
  it('returns views into the chunk, not copies, when a payload lies in one chunk', () => {
    const chunk = encodePacket(0, Buffer.from('hello'));
    const [p] = new PacketFramer({ maxPayloadLength: 100 }).push(chunk);
    expect(p.payload.buffer).toBe(chunk.buffer);
  });
  it('rejects oversized packets before buffering them', () => {
    const framer = new PacketFramer({ maxPayloadLength: 10 });
    expect(() => framer.push(Buffer.from([11, 0, 0, 0]))).toThrow(PacketError);
    expect(() => framer.push(Buffer.from([1]))).toThrow(expect.objectContaining({ code: 'too_large' }));
  });
  it('checks sequence ids of continuations and of an expected command start', () => {
    const framer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD });
    framer.expectSequence(0);
    expect(() => framer.push(encodePacket(3, Buffer.from([1])))).toThrow(expect.objectContaining({ code: 'bad_sequence' }));
  });
  it('reports partial state through buffered/atBoundary', () => {
    const framer = new PacketFramer({ maxPayloadLength: 100 });
    const bytes = encodePacket(0, Buffer.from('hello'));
    framer.push(bytes.subarray(0, 2));
    expect(framer.buffered).toBe(2);
    expect(framer.atBoundary).toBe(false);
    framer.push(bytes.subarray(2, 6));
    expect(framer.atBoundary).toBe(false);
    expect(framer.push(bytes.subarray(6))).toHaveLength(1);
    expect(framer.buffered).toBe(0);
    expect(framer.atBoundary).toBe(true);
  });
});

describe('16 MiB splitting', () => {
  const sizes = [0, 1, MAX_PACKET_PAYLOAD - 1, MAX_PACKET_PAYLOAD, MAX_PACKET_PAYLOAD + 1, 2 * MAX_PACKET_PAYLOAD];
  it.each(sizes)('payload of %i bytes round-trips through encodePacket, the framer and joinPackets', (size) => {
    const payload = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4093) payload[i] = i & 0xff;
    const seq = 254; // wraps
    const wire = encodePacket(seq, payload);
    expect(wire.length).toBe(size + 4 * packetCount(size));
    const framer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD });
    const packets: Packet[] = [];
    for (let i = 0; i < wire.length; i += 1 << 20) packets.push(...framer.push(wire.subarray(i, i + (1 << 20))));
    expect(packets).toHaveLength(Math.floor(size / MAX_PACKET_PAYLOAD) + 1);
    expect(packets.map((p) => p.sequenceId)).toEqual(packets.map((_, i) => (seq + i) & 0xff));
    expect(packets[packets.length - 1].last).toBe(true);
    if (size % MAX_PACKET_PAYLOAD === 0 && size > 0) expect(packets[packets.length - 1].payloadLength).toBe(0);
    expect(joinPackets(packets, size).equals(payload)).toBe(true);
    if (size > 0) expect(() => joinPackets(packets, size - 1)).toThrow(expect.objectContaining({ code: 'too_large' }));
    expect(framer.atBoundary).toBe(true);
  });
});
