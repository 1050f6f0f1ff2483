import { MAX_PACKET_PAYLOAD, PacketError, encodePacket } from '../../protocols/mysql';
import { MysqlPacketReader } from '../../src/mysql/packetReader';

describe('MysqlPacketReader', () => {
  const stream = Buffer.concat([encodePacket(0, Buffer.from('first')), encodePacket(1, Buffer.alloc(0)), encodePacket(2, Buffer.from('third payload'))]);

  test.each([1, 2, 3, 4, 5, 7, 64])('reassembles payloads fed in %i-byte chunks', (size) => {
    const r = new MysqlPacketReader(1024);
    const out: { sequenceId: number; payload: string }[] = [];
    for (let i = 0; i < stream.length; i += size) {
      r.push(stream.subarray(i, i + size));
      for (let p = r.next(); p; p = r.next()) out.push({ sequenceId: p.sequenceId, payload: p.payload.toString() });
    }
    expect(out).toEqual([
      { sequenceId: 0, payload: 'first' },
      { sequenceId: 1, payload: '' },
      { sequenceId: 2, payload: 'third payload' },
    ]);
    expect(r.buffered).toBe(0);
  });

  test('joins a payload split at 16 MiB and reports the last sequence id', () => {
    const big = Buffer.alloc(MAX_PACKET_PAYLOAD + 10, 0x61);
    const r = new MysqlPacketReader(MAX_PACKET_PAYLOAD + 100);
    r.push(encodePacket(5, big));
    const p = r.next();
    expect(p?.sequenceId).toBe(6);
    expect(p?.payload.equals(big)).toBe(true);
    expect(r.next()).toBeUndefined();
  });

  test('keeps unconsumed raw bytes for takeRemaining()', () => {
    const r = new MysqlPacketReader(1024);
    const partial = encodePacket(3, Buffer.from('partial')).subarray(0, 6);
    r.push(Buffer.concat([encodePacket(0, Buffer.from('x')), partial]));
    expect(r.next()?.payload.toString()).toBe('x');
    expect(r.next()).toBeUndefined();
    expect(r.takeRemaining().equals(partial)).toBe(true);
    expect(r.buffered).toBe(0);
  });

  test('refuses a payload over its bound from the header alone', () => {
    const r = new MysqlPacketReader(100);
    r.push(Buffer.from([0x65, 0x00, 0x00, 0x00])); // announces 101 bytes
    expect(() => r.next()).toThrow(PacketError);
  });
});
