import type net from 'node:net';

/**
 * What both protocols' upstream logins share: a deadline over the whole attempt (connect, TLS,
 * authentication), and a pull-style reader of whole messages from the socket while the gateway
 * itself talks to the server.
 */

/** Frames bytes into messages: push() may throw on bytes that cannot be a message. */
export interface MessageReader<M> {
  push(chunk: Buffer): void;
  next(): M | undefined;
}

/** Why a conversation cannot go on, for the protocol to word as its own login error. */
export type ConversationFailure =
  | { kind: 'error'; error: Error }
  | { kind: 'closed' }
  | { kind: 'invalid'; error: Error }
  | { kind: 'released' };

/** Reads whole messages from the socket while a login runs. A socket failure ends every pending and later next(). */
export class LoginConversation<M, R extends MessageReader<M> = MessageReader<M>> {
  #waiter: { resolve(): void; reject(e: Error): void } | undefined;
  #failure: Error | undefined;
  readonly #onData = (chunk: Buffer): void => {
    try {
      this.reader.push(chunk);
    } catch (err) {
      this.#fail(this.describe({ kind: 'invalid', error: err as Error }));
      return;
    }
    this.#wake();
  };
  readonly #onError = (err: Error): void => this.#fail(this.describe({ kind: 'error', error: err }));
  readonly #onClose = (): void => this.#fail(this.describe({ kind: 'closed' }));

  constructor(
    readonly socket: net.Socket,
    readonly reader: R,
    private readonly describe: (failure: ConversationFailure) => Error,
  ) {
    socket.on('data', this.#onData);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.resume();
  }

  async next(): Promise<M> {
    for (;;) {
      const m = this.reader.next();
      if (m !== undefined) return m;
      if (this.#failure) throw this.#failure;
      await new Promise<void>((resolve, reject) => (this.#waiter = { resolve, reject }));
    }
  }

  /** Stops listening and pauses the socket; unread bytes stay in `reader`. */
  release(): void {
    this.socket.pause();
    this.socket.removeListener('data', this.#onData);
    this.socket.removeListener('error', this.#onError);
    this.socket.removeListener('close', this.#onClose);
    this.#fail(this.describe({ kind: 'released' }));
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

/** The socket of a login attempt in progress, so that the deadline can close it. */
export interface LoginAttempt {
  socket: net.Socket | undefined;
  readonly timedOut: boolean;
}

export interface DeadlineOptions {
  timeoutMs: number;
  /** The error when the deadline passes. */
  timeoutError: () => Error;
  /** Turns any other failure into the protocol's login error (keep the protocol's own errors as they are). */
  wrap: (err: unknown) => Error;
  /** Close the socket also when the attempt succeeds (a probe that only reads the greeting). */
  closeAfter?: boolean;
}

/**
 * Runs one login attempt under a deadline. On failure or timeout the attempt's socket is
 * destroyed, with late 'error' events swallowed (a late write after an asynchronous SCRAM
 * derivation, say, must not raise an unhandled error).
 */
export async function underDeadline<T>(o: DeadlineOptions, run: (attempt: LoginAttempt) => Promise<T>): Promise<T> {
  let timedOut = false;
  const attempt: LoginAttempt = { socket: undefined, get timedOut() { return timedOut; } };
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      attempt.socket?.destroy();
      reject(o.timeoutError());
    }, o.timeoutMs);
  });
  const close = (): void => {
    attempt.socket?.on('error', () => undefined);
    attempt.socket?.destroy();
  };
  try {
    const result = await Promise.race([run(attempt), deadline]);
    if (o.closeAfter) close();
    return result;
  } catch (err) {
    close();
    throw o.wrap(err);
  } finally {
    clearTimeout(timer);
  }
}
