/**
 * Splits the byte stream a PostgreSQL server sends into whole messages (type byte + int32
 * length + body), across arbitrary chunk boundaries. Used only while the gateway itself talks
 * to the upstream (login, reset queries); the relay forwards raw chunks instead.
 */

export interface BackendFrame {
  /** The message type byte as a character, e.g. 'R', 'Z', 'E'. */
  type: string;
  /** Bytes after the length field. */
  body: Buffer;
  /** The whole message including its header (what pg-protocol's Parser consumes). */
  raw: Buffer;
}

export class UpstreamProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamProtocolError';
  }
}

/** Login and reset messages are small; a DataRow from an internal query may be larger. */
export const DEFAULT_MAX_BACKEND_MESSAGE = 16 * 1024 * 1024;

export class BackendFrameReader {
  #chunks: Buffer[] = [];
  #length = 0;
  readonly #maxMessage: number;

  constructor(maxMessage = DEFAULT_MAX_BACKEND_MESSAGE) {
    this.#maxMessage = maxMessage;
  }

  get buffered(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The next whole message, or undefined when more bytes are needed. Throws on a bad length. */
  next(): BackendFrame | undefined {
    if (this.#length < 5) return undefined;
    const head = this.#peek(5);
    const len = head.readUInt32BE(1);
    if (len < 4 || len > this.#maxMessage) {
      throw new UpstreamProtocolError(
        `Upstream sent a message of type '${printable(head[0])}' with length ${len}; expected 4..${this.#maxMessage}. The upstream is not a PostgreSQL server or the stream is out of sync.`,
      );
    }
    if (this.#length < len + 1) return undefined;
    const raw = this.#take(len + 1);
    return { type: String.fromCharCode(raw[0]), body: raw.subarray(5), raw };
  }

  /** Everything buffered but not yet returned by next(); empties the reader. */
  takeRemaining(): Buffer {
    return this.#take(this.#length);
  }

  #peek(n: number): Buffer {
    if (this.#chunks[0].length >= n) return this.#chunks[0].subarray(0, n);
    this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0].subarray(0, n);
  }

  #take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.#chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.#chunks);
      out = all.subarray(0, n);
      this.#chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.#length -= n;
    return out;
  }
}

function printable(byte: number): string {
  return byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
}
