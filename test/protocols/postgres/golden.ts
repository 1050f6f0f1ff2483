/** Loads the captured golden streams in test/golden/postgres and frames them the way a session would. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeStartupPacket, Frame, PgFramer } from '../../../protocols/postgres';

export const GOLDEN_DIR = path.join(__dirname, '..', '..', 'golden', 'postgres');

/** Hex file → bytes: '#' lines are comments, whitespace is ignored. */
export function loadHex(name: string): Buffer {
  const text = fs.readFileSync(path.join(GOLDEN_DIR, name), 'utf8');
  const hex = text
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .join('')
    .replace(/\s+/g, '');
  if (!/^([0-9a-f]{2})*$/i.test(hex)) throw new Error(`${name}: not a hex file`);
  return Buffer.from(hex, 'hex');
}

export interface GoldenStream {
  file: string;
  /** Client streams start with startup packets; server streams are typed from the first byte. */
  side: 'client' | 'server';
  /** Bytes before the first message that are not messages (the 'N' answer to SSLRequest). */
  skip: number;
}

export const GOLDEN_STREAMS: GoldenStream[] = fs
  .readdirSync(GOLDEN_DIR)
  .filter((f) => f.endsWith('.hex'))
  .sort()
  .map((file) => ({
    file,
    side: file.includes('.client.') ? ('client' as const) : ('server' as const),
    skip: file === 'psql15-sslprefer.server.hex' ? 1 : 0,
  }));

export const EMPTY = Buffer.alloc(0);

/** A frame detached from the chunk it may view into. */
export function own(f: Frame): Frame {
  return { type: f.type, bodyLength: f.bodyLength, body: Buffer.from(f.body) };
}

/**
 * Feeds chunks through a framer like a session would: in startup mode each packet is decoded and a
 * StartupMessage switches to typed framing; held bytes are drained with empty pushes.
 */
export function frameChunks(side: 'client' | 'server', chunks: Buffer[], opts: { maxBodyLength?: number; capture?: (t: number) => number } = {}): {
  frames: Frame[];
  framer: PgFramer;
} {
  const framer = new PgFramer({ startup: side === 'client', maxBodyLength: opts.maxBodyLength ?? 1 << 20, capture: opts.capture });
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    let batch = framer.push(chunk);
    while (batch.length > 0) {
      for (const f of batch) {
        frames.push(own(f));
        if (framer.inStartupMode && decodeStartupPacket(f.body).kind === 'startup') framer.expectTyped();
      }
      batch = framer.push(EMPTY);
    }
  }
  return { frames, framer };
}

/**
 * Independent reference splitter (straight-line, whole buffer in memory) to check the framer against.
 * Returns each message's raw bytes.
 */
export function referenceSplit(side: 'client' | 'server', bytes: Buffer): { type: number; raw: Buffer; body: Buffer }[] {
  const out: { type: number; raw: Buffer; body: Buffer }[] = [];
  let pos = 0;
  let startup = side === 'client';
  while (pos < bytes.length) {
    if (startup) {
      const len = bytes.readUInt32BE(pos);
      const body = bytes.subarray(pos + 4, pos + len);
      out.push({ type: 0, raw: bytes.subarray(pos, pos + len), body });
      if (body.readUInt32BE(0) >>> 16 === 3) startup = false;
      pos += len;
    } else {
      const len = bytes.readUInt32BE(pos + 1);
      out.push({ type: bytes[pos], raw: bytes.subarray(pos, pos + 1 + len), body: bytes.subarray(pos + 5, pos + 1 + len) });
      pos += 1 + len;
    }
  }
  if (pos !== bytes.length) throw new Error('reference splitter overran the stream');
  return out;
}

export function goldenBytes(g: GoldenStream): Buffer {
  return loadHex(g.file).subarray(g.skip);
}
