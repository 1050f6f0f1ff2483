import { MAX_PACKET_PAYLOAD, PACKET_HEADER_LENGTH } from '../../protocols/mysql/constants';
import { PacketError } from '../../protocols/mysql/errors';

export interface HandshakePacket {
  sequenceId: number;
  payload: Buffer;
}

/**
 * Whole packets of the connection phase (SSLRequest, HandshakeResponse41, the token), each
 * bounded by `maxPayload`. Bytes after a packet stay raw: after an SSLRequest they are the
 * start of the TLS handshake, not packets.
 */
export class MysqlHandshakeReader {
  private buffer: Buffer = Buffer.alloc(0);

  constructor(private readonly maxPayload: number) {}

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
  }

  get buffered(): number {
    return this.buffer.length;
  }

  /** The payload length the next packet's header announces, once its header has arrived. */
  peekLength(): number | undefined {
    return this.buffer.length < PACKET_HEADER_LENGTH ? undefined : this.buffer.readUIntLE(0, 3);
  }

  /** The next complete packet, or undefined until more bytes arrive. Throws PacketError past the bound. */
  next(): HandshakePacket | undefined {
    if (this.buffer.length < PACKET_HEADER_LENGTH) return undefined;
    const length = this.buffer.readUIntLE(0, 3);
    if (length > this.maxPayload || length === MAX_PACKET_PAYLOAD) {
      throw new PacketError('too_large', `a ${length}-byte packet during login, where at most ${this.maxPayload} bytes are accepted`);
    }
    const end = PACKET_HEADER_LENGTH + length;
    if (this.buffer.length < end) return undefined;
    const packet = { sequenceId: this.buffer[3], payload: this.buffer.subarray(PACKET_HEADER_LENGTH, end) };
    this.buffer = this.buffer.subarray(end);
    return packet;
  }

  /** Everything not yet returned, raw; the reader is empty afterwards. */
  takeRemaining(): Buffer {
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    return rest;
  }
}
