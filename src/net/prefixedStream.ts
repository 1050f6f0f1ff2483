import { Duplex } from 'node:stream';
import type net from 'node:net';

/**
 * A duplex over a socket that first replays bytes already read from it. Used for
 * PG17 direct TLS: the gateway reads the first chunk to see 0x16 (a TLS ClientHello),
 * and the TLS layer must still receive that chunk.
 */
export class PrefixedStream extends Duplex {
  constructor(private readonly socket: net.Socket, prefix: Buffer) {
    super();
    this.push(prefix);
    socket.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.socket.write(chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }
}
