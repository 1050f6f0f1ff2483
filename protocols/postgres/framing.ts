/**
 * Follows PostgreSQL message boundaries over arbitrary TCP chunks.
 *
 * Typed messages are `type byte | int32 length (includes itself) | body`; startup-phase packets
 * (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest) have no type byte. The framer holds at
 * most one header and the captured prefix of the current message: everything else is either
 * skipped by counting or handed out as a range (or view) of the pushed chunk, so a huge message
 * (COPY data, a big DataRow) costs no memory here.
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
 * Receives each completed frame from scan(): the same fields as a Frame without allocating one.
 * The captured prefix is `data[start, end)`: a range of a pushed chunk when it arrived whole in
 * one, else of the framer's own copy. Read it during the call; keep it only as a copy or a view
 * made then (the same rules as Frame.body).
 */
export type FrameHandler = (type: number, bodyLength: number, data: Buffer, start: number, end: number) => void;

/** What to capture of each message type: `(type) => bytes`, as FramerOptions.capture describes. */
export type CaptureFn = (type: number) => number;

/**
 * A capture policy evaluated for all 256 type bytes (captureTable()). A relay that makes a framer
 * per session builds its tables once and shares them: the framer then looks a type up instead of
 * calling a function per message.
 */
export interface CaptureTable {
  readonly bytes: Int32Array;
}

/** Largest capture a table holds; bodies are capped far lower (maxBodyLength). */
const CAPTURE_ALL = 0x7fffffff;

/** Evaluate a capture function once per type byte. -1 stays "skip"; anything else becomes a byte count. */
export function captureTable(capture: CaptureFn): CaptureTable {
  const bytes = new Int32Array(256);
  for (let type = 0; type < 256; type++) {
    const wanted = capture(type);
    bytes[type] = wanted === -1 ? -1 : Math.max(0, Math.min(CAPTURE_ALL, Math.floor(wanted) || 0));
  }
  return { bytes };
}

export interface FramerOptions {
  /** The first message is a startup packet: int32 length, no type byte (default false). */
  startup?: boolean;
  /** Any body longer than this is refused; startup packets are also capped at MAX_STARTUP_PACKET_LENGTH. */
  maxBodyLength: number;
  /**
   * Body bytes to keep for a message type (0 for startup packets); -1 = emit no Frame at all and
   * skip the message by counting (e.g. DataRow on the relay hot path). Default: the whole body.
   */
  capture?: CaptureFn | CaptureTable;
}

/** Bytes a client may send behind a startup-phase packet before the gateway has replied. */
const MAX_PENDING_AFTER_STARTUP = MAX_STARTUP_PACKET_LENGTH;

const enum Phase {
  Header,
  Body,
}

export class PgFramer {
  private readonly maxBodyLength: number;
  /** Bytes to capture per type byte (-1 = skip); null = whole bodies. */
  private readonly capture: Int32Array | null;
  private startupMode: boolean;

  private phase = Phase.Header;
  private readonly header = Buffer.alloc(5);
  private headerFilled = 0;

  private type = 0;
  private bodyLength = 0;
  /** Body bytes not yet seen for the current message. */
  private remaining = 0;
  private skip = false;
  /**
   * Where the captured prefix is: a pushed chunk from captureStart while it arrived whole in one
   * (no copy), else a copy made when it spans chunks (captureStart 0).
   */
  private captureData: Buffer = EMPTY;
  private captureStart = 0;
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
    const capture = opts.capture;
    this.capture = capture === undefined ? null : typeof capture === 'function' ? captureTable(capture).bytes : capture.bytes;
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
    this.scan(chunk, (type, bodyLength, data, start, end) => {
      frames.push({ type, bodyLength, body: data.subarray(start, end) });
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
    const end = buf.length;
    let pos = 0;
    while (pos < end) {
      if (this.phase === Phase.Header) {
        if (this.headerFilled === 0 && !this.startupMode) {
          pos = this.consumeWhole(buf, pos, end);
          if (pos === end) break;
        }
        const size = this.headerSize();
        let lengthField: number;
        if (this.headerFilled === 0 && end - pos >= size) {
          // Fast path: the whole header is in this chunk.
          if (size === 5) {
            this.type = buf[pos];
            lengthField = uint32At(buf, pos + 1);
          } else {
            this.type = 0;
            lengthField = uint32At(buf, pos);
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
            lengthField = uint32At(this.header, 1);
          } else {
            this.type = 0;
            lengthField = uint32At(this.header, 0);
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
        if (this.captureFilled === 0 && want === this.captureLength) {
          // Entire captured prefix is in this chunk: point at it, no copy.
          this.captureData = buf;
          this.captureStart = pos;
        } else {
          if (this.captureFilled === 0) {
            this.captureData = Buffer.allocUnsafe(this.captureLength);
            this.captureStart = 0;
          }
          buf.copy(this.captureData, this.captureFilled, pos, pos + want);
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

  /**
   * The relay's usual case: typed messages that lie whole inside the chunk. Each is framed from
   * local variables (no framer state is written); consume()'s state machine takes the first message
   * that is cut by the chunk's end or whose length it has to refuse. Returns where that message starts.
   */
  private consumeWhole(buf: Buffer, pos: number, end: number): number {
    const capture = this.capture;
    while (end - pos >= 5) {
      const bodyLength = uint32At(buf, pos + 1) - 4;
      if (bodyLength < 0 || bodyLength > this.maxBodyLength || bodyLength > end - pos - 5) break;
      const type = buf[pos];
      const start = pos + 5;
      pos = start + bodyLength;
      const wanted = capture === null ? bodyLength : capture[type];
      if (wanted === -1) continue;
      this.completed++;
      const kept = Math.min(bodyLength, wanted);
      if (kept === 0) this.onFrame(type, bodyLength, EMPTY, 0, 0);
      else this.onFrame(type, bodyLength, buf, start, start + kept);
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
        lengthField,
      );
    }
    this.bodyLength = bodyLength;
    this.remaining = bodyLength;
    const wanted = this.capture === null ? bodyLength : this.capture[this.type];
    this.skip = wanted === -1;
    this.captureLength = this.skip ? 0 : Math.min(bodyLength, wanted);
    this.captureFilled = 0;
  }

  /** The current message, for error text only (not built on the per-message path). */
  private describeCurrent(): string {
    return this.startupMode ? 'startup packet' : `message of type ${describeType(this.type)}`;
  }

  private finishMessage(): void {
    this.phase = Phase.Header;
    const data = this.captureData;
    this.captureData = EMPTY; // hold no chunk past its message
    if (this.skip) return;
    this.completed++;
    const start = this.captureLength === 0 ? 0 : this.captureStart;
    this.onFrame(this.type, this.bodyLength, data, start, start + this.captureLength);
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Big-endian uint32 at `pos` (the caller checked the 4 bytes are there). Indexed reads instead of
 * buf.readUInt32BE: V8's optimizing compiler inlines those, while a method looked up on a Buffer
 * stays a generic property load on every message (seen in the optimized code of consume()).
 */
function uint32At(buf: Buffer, pos: number): number {
  return buf[pos] * 0x1000000 + ((buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]);
}
const ignoreFrame: FrameHandler = () => undefined;

/** 'Q' (0x51) style description for error messages. */
export function describeType(type: number): string {
  const printable = type >= 0x20 && type < 0x7f;
  return printable ? `'${String.fromCharCode(type)}' (0x${type.toString(16).padStart(2, '0')})` : `0x${type.toString(16).padStart(2, '0')}`;
}
