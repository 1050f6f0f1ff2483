import { MAX_PACKET_PAYLOAD, PACKET_HEADER_LENGTH } from '../../protocols/mysql/constants';
import { PacketError } from '../../protocols/mysql/errors';

/**
 * One client command (its packets, 16 MiB continuations included) or the rest of a long one.
 * `raw` holds the bytes exactly as received (views of the socket's chunks) so the relay can
 * forward them unchanged, or drop them when the gateway answers the command itself.
 */
export type ClientItem =
  | {
      kind: 'command';
      /** Sequence id of the first packet (0 for a well-formed command). */
      sequenceId: number;
      /** Payload length announced by the first packet. */
      payloadLength: number;
      /** The first min(payloadLength, holdLimit) payload bytes, contiguous: the command byte and its arguments. */
      head: Buffer;
      raw: Buffer[];
      rawLength: number;
      /** False when the command was longer than holdLimit: its remaining bytes follow as 'tail' items. */
      complete: boolean;
    }
  | { kind: 'tail'; raw: Buffer; complete: boolean };

interface Assembly {
  sequenceId: number;
  payloadLength: number;
  head: Buffer | undefined;
  headWant: number;
  headFill: number;
  raw: Buffer[];
  rawLength: number;
  emitted: boolean;
}

/**
 * Splits the client's byte stream into commands. A command is held until it is complete, or
 * until `holdLimit` bytes of it have arrived (long INSERTs, SEND_LONG_DATA): then it is
 * emitted incomplete and streamed on as tails, so the gateway never holds more than
 * `holdLimit` bytes of one command. Only the head is ever copied, and only when it straddles
 * chunks.
 */
export class MysqlCommandSplitter {
  private readonly header = Buffer.alloc(PACKET_HEADER_LENGTH);
  private headerFill = 0;
  private inPayload = false;
  private remaining = 0;
  private packetLength = 0;
  private firstPacket = true;
  private lastSequenceId = 0;
  private cmd: Assembly | undefined;
  /** The start of the next command's header when it straddles chunks (at most 3 bytes, copied). */
  private partialHeader: Buffer | undefined;

  constructor(private readonly holdLimit: number) {}

  /** True between commands: nothing of a command is pending. */
  get atBoundary(): boolean {
    return this.cmd === undefined && this.headerFill === 0 && !this.inPayload;
  }

  push(chunk: Buffer): ClientItem[] {
    const out: ClientItem[] = [];
    this.scan(chunk, (item) => {
      out.push(item);
    });
    return out;
  }

  /**
   * push() without the array: each item completed by this chunk goes to `onItem` in order.
   * Throws PacketError on a continuation out of sequence. If onItem throws, the rest of the
   * chunk is not split and the error propagates: end the stream.
   */
  scan(chunk: Buffer, onItem: (item: ClientItem) => void): void {
    let pos = 0;
    let segStart = 0;
    while (pos < chunk.length || (this.inPayload && this.remaining === 0)) {
      if (!this.inPayload) {
        if (this.headerFill === 0 && chunk.length - pos >= PACKET_HEADER_LENGTH) {
          // The whole header is in this chunk (the usual case): read it in place.
          this.startPacket(chunk[pos] | (chunk[pos + 1] << 8) | (chunk[pos + 2] << 16), chunk[pos + 3]);
          pos += PACKET_HEADER_LENGTH;
          continue;
        }
        const take = Math.min(PACKET_HEADER_LENGTH - this.headerFill, chunk.length - pos);
        chunk.copy(this.header, this.headerFill, pos, pos + take);
        this.headerFill += take;
        pos += take;
        if (this.headerFill < PACKET_HEADER_LENGTH) break;
        this.headerFill = 0;
        const h = this.header;
        this.startPacket(h[0] | (h[1] << 8) | (h[2] << 16), h[3]);
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - pos);
      const cmd = this.cmd as Assembly;
      if (this.firstPacket && cmd.headFill < cmd.headWant) this.keepHead(cmd, chunk, pos, take);
      pos += take;
      this.remaining -= take;
      if (this.remaining > 0) continue;
      this.inPayload = false;
      if (this.packetLength === MAX_PACKET_PAYLOAD) {
        this.firstPacket = false; // a continuation packet follows
        continue;
      }
      // The command is complete.
      const c = cmd;
      this.cmd = undefined;
      this.firstPacket = true;
      this.emit(onItem, c, segment(chunk, segStart, pos), true);
      segStart = pos;
    }
    if (segStart < chunk.length) {
      if (this.cmd) this.emit(onItem, this.cmd, segment(chunk, segStart, chunk.length), false);
      else this.partialHeader = Buffer.concat([this.partialHeader ?? Buffer.alloc(0), chunk.subarray(segStart)]);
    }
  }

  private startPacket(length: number, sequenceId: number): void {
    if (!this.cmd) {
      const headWant = Math.min(length, this.holdLimit);
      const raw = this.partialHeader ? [this.partialHeader] : [];
      this.cmd = { sequenceId, payloadLength: length, head: undefined, headWant, headFill: 0, raw, rawLength: this.partialHeader?.length ?? 0, emitted: false };
      this.partialHeader = undefined;
    } else if (sequenceId !== ((this.lastSequenceId + 1) & 0xff)) {
      throw new PacketError('bad_sequence', `packet sequence id ${sequenceId} where ${(this.lastSequenceId + 1) & 0xff} was expected (continuation of a split command)`);
    }
    this.lastSequenceId = sequenceId;
    this.packetLength = length;
    this.remaining = length;
    this.inPayload = true;
  }

  private keepHead(cmd: Assembly, chunk: Buffer, pos: number, available: number): void {
    const want = Math.min(cmd.headWant - cmd.headFill, available);
    if (!cmd.head && want === cmd.headWant) {
      cmd.head = chunk.subarray(pos, pos + want); // all of it in this chunk: a view, no copy
    } else {
      if (!cmd.head) cmd.head = Buffer.allocUnsafe(cmd.headWant);
      chunk.copy(cmd.head, cmd.headFill, pos, pos + want);
    }
    cmd.headFill += want;
  }

  /** Hands out `bytes` of `cmd`: held until complete or past the hold limit, then streamed. */
  private emit(onItem: (item: ClientItem) => void, cmd: Assembly, bytes: Buffer, complete: boolean): void {
    if (cmd.emitted) {
      if (bytes.length > 0 || complete) onItem({ kind: 'tail', raw: bytes, complete });
      return;
    }
    if (bytes.length > 0) {
      cmd.raw.push(bytes);
      cmd.rawLength += bytes.length;
    }
    const headReady = cmd.headFill >= cmd.headWant;
    if (complete || (headReady && cmd.rawLength >= this.holdLimit)) {
      cmd.emitted = true;
      onItem({
        kind: 'command',
        sequenceId: cmd.sequenceId,
        payloadLength: cmd.payloadLength,
        head: cmd.head ?? Buffer.alloc(0),
        raw: cmd.raw,
        rawLength: cmd.rawLength,
        complete,
      });
    }
  }
}

/** chunk[start, end): the chunk itself when that is all of it (the usual one-command chunk), else a view. */
function segment(chunk: Buffer, start: number, end: number): Buffer {
  return start === 0 && end === chunk.length ? chunk : chunk.subarray(start, end);
}
