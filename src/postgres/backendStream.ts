import { encodeMessage } from '../../protocols/postgres/backend';
import { PgFramer, type Frame } from '../../protocols/postgres/framing';

/**
 * The upstream byte stream while the gateway itself reads it (login, reset and SET queries):
 * whole messages framed by protocols/postgres's PgFramer, queued for a pull-style reader.
 * It also keeps the raw bytes of the message in progress, so the stream can be handed to the
 * relay between any two chunks without losing a byte (see takeUnread).
 */
export class BackendStream {
  readonly #maxBodyLength: number;
  #framer: PgFramer;
  #queue: Frame[] = [];
  /** Views of the pushed chunks holding exactly the bytes of the incomplete last message. */
  #partial: Buffer[] = [];

  /** @param maxBodyLength a longer message is refused with a FrameError (it cannot be a login or control reply). */
  constructor(maxBodyLength: number) {
    this.#maxBodyLength = maxBodyLength;
    this.#framer = new PgFramer({ maxBodyLength });
  }

  /** Bytes pushed but not yet returned as a message by next(): queued messages and the partial one. */
  get buffered(): number {
    let n = this.#framer.buffered;
    for (const f of this.#queue) n += 5 + f.bodyLength;
    return n;
  }

  /** Frames the chunk. Throws FrameError on an impossible length; the stream is unusable after that. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const frames = this.#framer.push(chunk);
    for (const f of frames) this.#queue.push(f);
    const inProgress = this.#framer.buffered;
    if (inProgress === 0) this.#partial = [];
    // A message completed here, so the one in progress started in this chunk.
    else if (frames.length > 0) this.#partial = [chunk.subarray(chunk.length - inProgress)];
    else this.#partial.push(chunk);
  }

  /** The next whole message, or undefined when more bytes are needed. */
  next(): Frame | undefined {
    return this.#queue.shift();
  }

  /**
   * Everything pushed but not yet returned by next(), as the wire bytes, and a fresh start.
   * Queued messages are rebuilt from their type and whole body (byte-identical); the message in
   * progress is returned as received. Normally empty: the owner reads every message as it arrives.
   */
  takeUnread(): Buffer {
    const parts = this.#queue.map((f) => encodeMessage(f.type, f.body));
    parts.push(...this.#partial);
    this.#queue = [];
    this.#partial = [];
    this.#framer = new PgFramer({ maxBodyLength: this.#maxBodyLength });
    return parts.length === 0 ? EMPTY : Buffer.concat(parts);
  }
}

const EMPTY = Buffer.alloc(0);
