/**
 * Packet framing over arbitrary chunks. The relay path forwards the chunks it
 * received untouched; the framer only follows headers and keeps a bounded prefix of
 * each payload (chosen by `capture`), so it never copies whole packets. When a kept
 * prefix lies inside one chunk it is read in place (scan) or handed out as a view of
 * that chunk (push), not copied.
 */
import { MAX_PACKET_PAYLOAD, PACKET_HEADER_LENGTH } from './constants';
import { PacketError } from './errors';

export interface Packet {
  sequenceId: number;
  /** Length of the whole payload as announced by the header. */
  payloadLength: number;
  /** The captured prefix of the payload (the whole payload unless `capture` said less). */
  payload: Buffer;
  /** False when payloadLength == 0xffffff: a continuation packet follows. */
  last: boolean;
  /** True when this packet continues a payload split across packets (its first byte is not a header byte). */
  continuation: boolean;
}

/**
 * Decides how many payload bytes to keep for one packet: `firstByte` is -1 for an
 * empty payload. Return -1 to not emit the packet at all, 0..n to keep a prefix, or
 * Infinity for the whole payload.
 */
export type CaptureFn = (firstByte: number, sequenceId: number, continuation: boolean) => number;

/**
 * Receives each packet completed by scan(), without a Packet object or a view being made:
 * the captured prefix is `data[start, end)`. `data` is the pushed chunk when the prefix lay in
 * one chunk (do not mutate chunks while their packets are in use), else a copy. The packet is
 * the last of its payload when `payloadLength !== MAX_PACKET_PAYLOAD`.
 */
export type PacketHandler = (sequenceId: number, payloadLength: number, data: Buffer, start: number, end: number, continuation: boolean) => void;

export interface PacketFramerOptions {
  /** Packets announcing a longer payload are rejected with PacketError('too_large'). At most 0xffffff. */
  maxPayloadLength: number;
  capture?: CaptureFn;
}

const EMPTY = Buffer.alloc(0);

export class PacketFramer {
  private readonly maxPayloadLength: number;
  private readonly capture: CaptureFn | undefined;
  private readonly header = Buffer.alloc(PACKET_HEADER_LENGTH);
  private headerFill = 0;
  // Current packet (valid while inPayload).
  private inPayload = false;
  private sequenceId = 0;
  private payloadLength = 0;
  private remaining = 0;
  private keep = -2; // -2: not yet decided (the first payload byte has not arrived)
  /** Where the kept prefix is: a pushed chunk (when it lay in one) or a copy; `keptStart` is its offset there. */
  private kept: Buffer = EMPTY;
  private keptStart = 0;
  /** Kept bytes so far; `kept` is a copy being filled while keptFill < keep. */
  private keptFill = 0;
  private continuation = false;
  // Across packets.
  private continuationExpected = false;
  private previousSequenceId = 0;
  private expectedSequenceId: number | undefined;
  private failed: PacketError | undefined;

  constructor(opts: PacketFramerOptions) {
    if (!Number.isInteger(opts.maxPayloadLength) || opts.maxPayloadLength < 0 || opts.maxPayloadLength > MAX_PACKET_PAYLOAD) {
      throw new RangeError(`maxPayloadLength must be an integer in 0..${MAX_PACKET_PAYLOAD}`);
    }
    this.maxPayloadLength = opts.maxPayloadLength;
    this.capture = opts.capture;
  }

  /** Bytes held internally: a partial header plus the partial captured prefix. */
  get buffered(): number {
    return this.headerFill + (this.inPayload && this.keptFill < this.keep ? this.keptFill : 0);
  }

  /** True between whole logical payloads: no partial packet and no pending continuation. */
  get atBoundary(): boolean {
    return this.headerFill === 0 && !this.inPayload && !this.continuationExpected;
  }

  /**
   * Requires the next packet to carry this sequence id (e.g. 0 at the start of a
   * command); undefined turns the check off. Continuations are always checked.
   */
  expectSequence(sequenceId: number | undefined): void {
    this.expectedSequenceId = sequenceId === undefined ? undefined : sequenceId & 0xff;
  }

  /**
   * Feeds a chunk and returns the packets completed by it. After a PacketError the
   * stream is unusable and every later push throws the same error.
   */
  push(chunk: Buffer): Packet[] {
    const out: Packet[] = [];
    this.scan(chunk, (sequenceId, payloadLength, data, start, end, continuation) => {
      const payload = start === 0 && end === data.length ? data : data.subarray(start, end);
      out.push({ sequenceId, payloadLength, payload, last: payloadLength !== MAX_PACKET_PAYLOAD, continuation });
    });
    return out;
  }

  /**
   * push() without the array: each packet completed by this chunk goes to `onPacket` as soon
   * as it is framed, so a relay pays no allocation per packet. Same rules and errors as push().
   * If onPacket throws, the rest of the chunk is not framed and the error propagates: end the stream.
   */
  scan(chunk: Buffer, onPacket: PacketHandler): void {
    if (this.failed) throw this.failed;
    const n = chunk.length;
    let pos = 0;
    while (pos < n || (this.inPayload && this.remaining === 0)) {
      if (!this.inPayload) {
        if (this.headerFill === 0 && n - pos >= PACKET_HEADER_LENGTH) {
          // The whole header is in this chunk: read it in place.
          this.startPacket(chunk[pos] | (chunk[pos + 1] << 8) | (chunk[pos + 2] << 16), chunk[pos + 3]);
          pos += PACKET_HEADER_LENGTH;
          continue;
        }
        const take = Math.min(PACKET_HEADER_LENGTH - this.headerFill, n - pos);
        chunk.copy(this.header, this.headerFill, pos, pos + take);
        this.headerFill += take;
        pos += take;
        if (this.headerFill < PACKET_HEADER_LENGTH) break;
        this.headerFill = 0;
        this.startPacket(this.header.readUIntLE(0, 3), this.header[3]);
        continue;
      }
      if (this.keep === -2) this.decideKeep(this.remaining > 0 ? chunk[pos] : -1);
      const take = Math.min(this.remaining, n - pos);
      if (this.keep > this.keptFill) this.keepBytes(chunk, pos, take);
      pos += take;
      this.remaining -= take;
      if (this.remaining === 0) this.finishPacket(onPacket);
    }
  }

  private fail(err: PacketError): never {
    this.failed = err;
    throw err;
  }

  private startPacket(length: number, sequenceId: number): void {
    if (length > this.maxPayloadLength) {
      this.fail(
        new PacketError(
          'too_large',
          `a packet announces a ${length}-byte payload but at most ${this.maxPayloadLength} bytes are accepted here; ` +
            'send a smaller packet (or raise the limit)',
        ),
      );
    }
    const expected = this.continuationExpected ? (this.previousSequenceId + 1) & 0xff : this.expectedSequenceId;
    if (expected !== undefined && sequenceId !== expected) {
      this.fail(
        new PacketError(
          'bad_sequence',
          `packet sequence id ${sequenceId} where ${expected} was expected` +
            (this.continuationExpected ? ' (continuation of a split payload)' : ''),
        ),
      );
    }
    this.expectedSequenceId = undefined;
    this.continuation = this.continuationExpected;
    this.inPayload = true;
    this.sequenceId = sequenceId;
    this.payloadLength = length;
    this.remaining = length;
    this.keep = -2;
    this.kept = EMPTY;
    this.keptStart = 0;
    this.keptFill = 0;
  }

  private decideKeep(firstByte: number): void {
    let keep = this.capture ? this.capture(firstByte, this.sequenceId, this.continuation) : this.payloadLength;
    if (Number.isNaN(keep)) keep = 0;
    this.keep = keep < 0 ? -1 : Math.min(Math.floor(keep), this.payloadLength);
  }

  private keepBytes(chunk: Buffer, pos: number, available: number): void {
    const want = Math.min(this.keep - this.keptFill, available);
    if (this.keptFill === 0 && want === this.keep) {
      // The whole prefix is in this chunk: remember where, no copy.
      this.kept = chunk;
      this.keptStart = pos;
    } else {
      if (this.keptFill === 0) this.kept = Buffer.allocUnsafe(this.keep);
      chunk.copy(this.kept, this.keptFill, pos, pos + want);
    }
    this.keptFill += want;
  }

  private finishPacket(onPacket: PacketHandler): void {
    this.continuationExpected = this.payloadLength === MAX_PACKET_PAYLOAD;
    this.previousSequenceId = this.sequenceId;
    this.inPayload = false;
    if (this.keep === -1) return;
    const kept = this.kept;
    this.kept = EMPTY; // hold no chunk past its packet
    onPacket(this.sequenceId, this.payloadLength, kept, this.keptStart, this.keptStart + this.keptFill, this.continuation);
  }
}

/** Number of packets a payload of `payloadLength` bytes occupies (splits at 0xffffff). */
export function packetCount(payloadLength: number): number {
  return Math.floor(payloadLength / MAX_PACKET_PAYLOAD) + 1;
}

/**
 * Frames a payload. Payloads of 0xffffff bytes or more are split into several
 * packets with consecutive sequence ids; when the size is an exact multiple of
 * 0xffffff an empty packet terminates it. The next free sequence id is
 * `(sequenceId + packetCount(payload.length)) & 0xff`.
 */
export function encodePacket(sequenceId: number, payload: Buffer): Buffer {
  const count = packetCount(payload.length);
  const out = Buffer.allocUnsafe(payload.length + count * PACKET_HEADER_LENGTH);
  let src = 0;
  let dst = 0;
  for (let i = 0; i < count; i++) {
    const len = Math.min(MAX_PACKET_PAYLOAD, payload.length - src);
    out.writeUIntLE(len, dst, 3);
    out[dst + 3] = (sequenceId + i) & 0xff;
    payload.copy(out, dst + PACKET_HEADER_LENGTH, src, src + len);
    src += len;
    dst += PACKET_HEADER_LENGTH + len;
  }
  return out;
}

/**
 * Reassembles one logical payload from its packets (as emitted by a framer that
 * captured whole payloads). Throws PacketError when the pieces are not one complete
 * payload or the result would exceed `maxLength` bytes.
 */
export function joinPackets(packets: readonly Packet[], maxLength: number): Buffer {
  if (packets.length === 0) throw new PacketError('bad_sequence', 'no packets to join');
  let total = 0;
  packets.forEach((p, i) => {
    const final = i === packets.length - 1;
    if (p.last !== final || p.continuation !== (i > 0)) {
      throw new PacketError('bad_sequence', `packet ${i} of ${packets.length} does not fit a single split payload`);
    }
    if (p.payload.length !== p.payloadLength) {
      throw new PacketError('bad_sequence', `packet ${i} was captured partially (${p.payload.length} of ${p.payloadLength} bytes)`);
    }
    total += p.payloadLength;
    if (total > maxLength) {
      throw new PacketError('too_large', `the reassembled payload exceeds the limit of ${maxLength} bytes`);
    }
  });
  return packets.length === 1 ? packets[0].payload : Buffer.concat(packets.map((p) => p.payload), total);
}
