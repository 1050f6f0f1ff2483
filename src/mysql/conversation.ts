import type * as net from 'node:net';
import { encodePacket } from '../../protocols/mysql/framing';
import { MysqlPacketReader, MysqlPayload } from './packetReader';

/** Bound on any single payload during login (greeting, auth data, RSA key, ERR). */
export const MAX_LOGIN_PAYLOAD = 64 * 1024;

/**
 * Reads whole payloads from an upstream socket while the gateway itself talks to it
 * (connection phase). Errors and close end every pending and later next() with `failure`.
 */
export class MysqlConversation {
  readonly reader: MysqlPacketReader;
  #waiter: { resolve(): void; reject(e: Error): void } | undefined;
  #failure: Error | undefined;
  readonly #onData = (chunk: Buffer): void => {
    this.reader.push(chunk);
    this.#wake();
  };
  readonly #onError = (err: Error): void => this.#fail(this.describeFailure(`failed: ${err.message}`));
  readonly #onClose = (): void => this.#fail(this.describeFailure('was closed by the server'));

  constructor(
    readonly socket: net.Socket,
    /** Builds the error for a socket failure; `what` is e.g. "was closed by the server". */
    private readonly describeFailure: (what: string) => Error,
    reader?: MysqlPacketReader,
  ) {
    this.reader = reader ?? new MysqlPacketReader(MAX_LOGIN_PAYLOAD);
    socket.on('data', this.#onData);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.resume();
  }

  async next(): Promise<MysqlPayload> {
    for (;;) {
      const p = this.reader.next();
      if (p) return p;
      if (this.#failure) throw this.#failure;
      await new Promise<void>((resolve, reject) => (this.#waiter = { resolve, reject }));
    }
  }

  write(sequenceId: number, payload: Buffer): void {
    this.socket.write(encodePacket(sequenceId, payload));
  }

  /** Stops listening and pauses the socket; unread bytes stay in `reader`. */
  release(): void {
    this.socket.pause();
    this.socket.removeListener('data', this.#onData);
    this.socket.removeListener('error', this.#onError);
    this.socket.removeListener('close', this.#onClose);
    this.#fail(this.describeFailure('was released'));
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.resolve();
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(this.#failure);
  }
}
