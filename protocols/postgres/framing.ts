/**
 * Follows PostgreSQL message boundaries over arbitrary TCP chunks.
 *
 * Typed messages are `type byte | int32 length (includes itself) | body`; startup-phase packets
 * (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest) have no type byte. The framer holds at
 * most one header and the captured prefix of the current message: everything else is either
 * skipped by counting or handed out as a view of the pushed chunk, so a huge message (COPY data,
 * a big DataRow) costs no memory here.
 */
import { MAX_STARTUP_PACKET_LENGTH, MIN_STARTUP_PACKET_LENGTH } from './constants';
import { FrameError } from './errors';

export { FrameError } from './errors';
export type { FrameErrorCode } from './errors';

export interface Frame {
  /** Message type byte; 0 for a startup-phase packet (which has no type byte). */
  type: number;
  /** Length field minus the 4 bytes of the length itself. */
  bodyLength: number;
  /**
   * Captured prefix of the body: `min(bodyLength, capture(type))` bytes. May be a view into a
   * pushed chunk (no copy): do not mutate chunks after pushing them if frames are still in use.
   */
  body: Buffer;
}

/**
 * Receives each completed frame from scan(): the same fields as a Frame, without allocating one.
 * `body` follows the same rules as Frame.body.
 */
export type FrameHandler = (type: number, bodyLength: number, body: Buffer) => void;

export interface FramerOptions {
  /** The first message is a startup packet: int32 length, no type byte (default false). */
  startup?: boolean;
  /** Any body longer than this is refused; startup packets are also capped at MAX_STARTUP_PACKET_LENGTH. */
  maxBodyLength: number;
  /**
   * Body bytes to keep for a message type (0 for startup packets); -1 = emit no Frame at all and
   * skip the message by counting (e.g. DataRow on the relay hot path). Default: the whole body.
   */
  capture?: (type: number) => number;
}

/** Bytes a client may send behind a startup-phase packet before the gateway has replied. */
const MAX_PENDING_AFTER_STARTUP = MAX_STARTUP_PACKET_LENGTH;

const enum Phase {
  Header,
  Body,
}

export class PgFramer {
  private readonly maxBodyLength: number;
  private readonly capture: ((type: number) => number) | undefined;
  private startupMode: boolean;

  private phase = Phase.Header;
  private readonly header = Buffer.alloc(5);
  private headerFilled = 0;

  private type = 0;
  private bodyLength = 0;
  /** Body bytes not yet seen for the current message. */
  private remaining = 0;
  private skip = false;
  /** Copy target when the captured prefix spans chunks; null while it can still be a view. */
  private captureBuf: Buffer | null = null;
  private captureLength = 0;
  private captureFilled = 0;

  /**
   * In startup mode the framer stops after each packet: what follows depends on the gateway's reply
   * (TLS, typed messages or more startup packets). Unparsed bytes wait here as views of their chunks.
   */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private failure: FrameError | null = null;
  /** Where finishMessage() hands frames during the current push()/scan(). */
  private onFrame: FrameHandler = ignoreFrame;
  /** Frames handed out during the current call (startup mode stops after one). */
  private completed = 0;

  constructor(opts: FramerOptions) {
    if (!Number.isInteger(opts.maxBodyLength) || opts.maxBodyLength < 0) {
      throw new RangeError(`maxBodyLength must be a non-negative integer, got ${opts.maxBodyLength}`);
    }
    this.maxBodyLength = opts.maxBodyLength;
    this.capture = opts.capture;
    this.startupMode = opts.startup ?? false;
  }

  /** Bytes received that are not yet part of a completed frame (including bytes held behind a startup packet). */
  get buffered(): number {
    const inMessage = this.phase === Phase.Header ? this.headerFilled : this.headerSize() + this.bodyLength - this.remaining;
    return inMessage + this.pendingBytes;
  }

  /** True when no partial message is in progress and nothing is waiting to be parsed. */
  get atBoundary(): boolean {
    return this.phase === Phase.Header && this.headerFilled === 0 && this.pendingBytes === 0;
  }

  /** True while packets are framed without a type byte. */
  get inStartupMode(): boolean {
    return this.startupMode;
  }

  /**
   * Switch to typed messages after the StartupMessage. Bytes the client already sent behind it are
   * framed by the next push (push an empty buffer to get them now).
   */
  expectTyped(): void {
    if (this.phase !== Phase.Header || this.headerFilled !== 0) {
      throw new Error('expectTyped() called in the middle of a startup packet');
    }
    this.startupMode = false;
  }

  /**
   * Frames completed by this chunk, in order. In startup mode at most one frame is returned per call
   * and later bytes are held until the next call. Throws FrameError on a bad length; after that every
   * call throws the same error.
   */
  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    this.scan(chunk, (type, bodyLength, body) => {
      frames.push({ type, bodyLength, body });
    });
    return frames;
  }

  /**
   * push() without the array: each frame completed by this chunk goes to `onFrame` as soon as it is
   * framed, so a relay pays no allocation per message. Same rules and errors as push(). If onFrame
   * throws, the rest of the chunk is not framed and the error propagates: end the stream.
   */
  scan(chunk: Buffer, onFrame: FrameHandler): void {
    if (this.failure) throw this.failure;
    this.onFrame = onFrame;
    this.completed = 0;
    try {
      // Bytes held behind an earlier startup packet come first, in order.
      while (this.pending.length > 0) {
        const buf = this.pending[0];
        const used = this.consume(buf);
        if (used < buf.length) this.pending[0] = buf.subarray(used);
        else this.pending.shift();
        this.pendingBytes -= used;
        if (this.startupMode && this.completed > 0) {
          this.hold(chunk);
          return;
        }
      }
      const used = this.consume(chunk);
      if (used < chunk.length) this.hold(chunk.subarray(used));
    } catch (err) {
      if (err instanceof FrameError) this.failure = err;
      throw err;
    } finally {
      this.onFrame = ignoreFrame;
    }
  }

  private hold(buf: Buffer): void {
    if (buf.length === 0) return;
    if (this.pendingBytes + buf.length > MAX_PENDING_AFTER_STARTUP) {
      throw new FrameError(
        'unexpected_data',
        `client sent more than ${MAX_PENDING_AFTER_STARTUP} bytes after a startup packet without waiting for the server's reply; ` +
          'a PostgreSQL client must wait for the answer to SSLRequest/GSSENCRequest/StartupMessage',
      );
    }
    this.pending.push(buf);
    this.pendingBytes += buf.length;
  }

  private headerSize(): number {
    return this.startupMode ? 4 : 5;
  }

  /** Runs the state machine over `buf`; returns how many bytes were used (less than all only in startup mode). */
  private consume(buf: Buffer): number {
    let pos = 0;
    const end = buf.length;
    while (pos < end) {
      if (this.phase === Phase.Header) {
        const size = this.headerSize();
        let lengthField: number;
        if (this.headerFilled === 0 && end - pos >= size) {
          // Fast path: the whole header is in this chunk.
          if (size === 5) {
            this.type = buf[pos];
            lengthField = buf.readUInt32BE(pos + 1);
          } else {
            this.type = 0;
            lengthField = buf.readUInt32BE(pos);
          }
          pos += size;
        } else {
          const take = Math.min(size - this.headerFilled, end - pos);
          buf.copy(this.header, this.headerFilled, pos, pos + take);
          this.headerFilled += take;
          pos += take;
          if (this.headerFilled < size) return pos;
          this.headerFilled = 0;
          if (size === 5) {
            this.type = this.header[0];
            lengthField = this.header.readUInt32BE(1);
          } else {
            this.type = 0;
            lengthField = this.header.readUInt32BE(0);
          }
        }
        this.startMessage(lengthField);
        if (this.remaining === 0) {
          this.finishMessage();
          if (this.startupMode) return pos;
          continue;
        }
        this.phase = Phase.Body;
      }

      // Phase.Body
      const take = Math.min(this.remaining, end - pos);
      if (!this.skip && this.captureFilled < this.captureLength) {
        const want = Math.min(this.captureLength - this.captureFilled, take);
        if (this.captureBuf === null && this.captureFilled === 0 && want === this.captureLength) {
          // Entire captured prefix is in this chunk: hand out a view, no copy.
          this.captureBuf = buf.subarray(pos, pos + want);
        } else {
          if (this.captureBuf === null) this.captureBuf = Buffer.allocUnsafe(this.captureLength);
          buf.copy(this.captureBuf, this.captureFilled, pos, pos + want);
        }
        this.captureFilled += want;
      }
      this.remaining -= take;
      pos += take;
      if (this.remaining === 0) {
        this.finishMessage();
        if (this.startupMode) return pos;
      }
    }
    return pos;
  }

  private startMessage(lengthField: number): void {
    const startup = this.startupMode;
    const minimum = startup ? MIN_STARTUP_PACKET_LENGTH : 4;
    if (lengthField < minimum) {
      throw new FrameError(
        'length_too_small',
        `${this.describeCurrent()} has length ${lengthField}, expected at least ${minimum}; the byte stream is not valid PostgreSQL protocol`,
      );
    }
    const bodyLength = lengthField - 4;
    if (bodyLength > this.maxBodyLength || (startup && lengthField > MAX_STARTUP_PACKET_LENGTH)) {
      const limit = startup ? Math.min(MAX_STARTUP_PACKET_LENGTH, this.maxBodyLength + 4) : this.maxBodyLength + 4;
      throw new FrameError(
        'length_too_large',
        `${this.describeCurrent()} has length ${lengthField}, the limit is ${limit} bytes` +
          (startup ? '; is this a PostgreSQL client? (TLS without SSLRequest and HTTP also look like this)' : ''),
      );
    }
    this.bodyLength = bodyLength;
    this.remaining = bodyLength;
    const wanted = this.capture ? this.capture(this.type) : bodyLength;
    this.skip = wanted === -1;
    this.captureLength = this.skip ? 0 : Math.max(0, Math.min(bodyLength, Math.floor(wanted) || 0));
    this.captureFilled = 0;
    this.captureBuf = null;
  }

  /** The current message, for error text only (not built on the per-message path). */
  private describeCurrent(): string {
    return this.startupMode ? 'startup packet' : `message of type ${describeType(this.type)}`;
  }

  private finishMessage(): void {
    this.phase = Phase.Header;
    const body = this.captureBuf ?? EMPTY;
    this.captureBuf = null;
    if (this.skip) return;
    this.completed++;
    this.onFrame(this.type, this.bodyLength, body);
  }
}

const EMPTY = Buffer.alloc(0);
const ignoreFrame: FrameHandler = () => undefined;

/** 'Q' (0x51) style description for error messages. */
export function describeType(type: number): string {
  const printable = type >= 0x20 && type < 0x7f;
  return printable ? `'${String.fromCharCode(type)}' (0x${type.toString(16).padStart(2, '0')})` : `0x${type.toString(16).padStart(2, '0')}`;
}
