import { MAX_PACKET_PAYLOAD, PACKET_HEADER_LENGTH } from '../../protocols/mysql/constants';
import { PacketError } from '../../protocols/mysql/errors';

/** One whole logical payload (16 MiB splits joined) and the sequence id of its last packet. */
export interface MysqlPayload {
  sequenceId: number;
  payload: Buffer;
}

/**
 * Reassembles whole server payloads for the gateway's own conversations with an upstream
 * (login, internal commands), where packets are small and bounded. Unlike the relay's
 * PacketFramer it keeps the raw bytes it has not consumed, so the connection can hand
 * them to the relay exactly as received (detach()).
 */
export class MysqlPacketReader {
  #buffer: Buffer = Buffer.alloc(0);

  constructor(private readonly maxPayloadBytes: number) {}

  push(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
  }

  /** Bytes received and not yet returned by next(). */
  get buffered(): number {
    return this.#buffer.length;
  }

  /** The next complete payload, or undefined until more bytes arrive. Throws PacketError past the bound. */
  next(): MysqlPayload | undefined {
    const parts: Buffer[] = [];
    let offset = 0;
    let total = 0;
    for (;;) {
      if (this.#buffer.length - offset < PACKET_HEADER_LENGTH) return undefined;
      const length = this.#buffer.readUIntLE(offset, 3);
      const sequenceId = this.#buffer[offset + 3];
      total += length;
      if (total > this.maxPayloadBytes) {
        throw new PacketError('too_large', `the upstream sent a ${total}-byte payload where at most ${this.maxPayloadBytes} bytes are expected (login or internal command)`);
      }
      const end = offset + PACKET_HEADER_LENGTH + length;
      if (this.#buffer.length < end) return undefined;
      parts.push(this.#buffer.subarray(offset + PACKET_HEADER_LENGTH, end));
      offset = end;
      if (length !== MAX_PACKET_PAYLOAD) {
        this.#buffer = this.#buffer.subarray(offset);
        return { sequenceId, payload: parts.length === 1 ? parts[0] : Buffer.concat(parts, total) };
      }
    }
  }

  /** Everything not yet consumed, raw; the reader is empty afterwards. */
  takeRemaining(): Buffer {
    const rest = this.#buffer;
    this.#buffer = Buffer.alloc(0);
    return rest;
  }
}
