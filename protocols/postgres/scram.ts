import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * SCRAM-SHA-256 client (RFC 5802 / RFC 7677) as PostgreSQL uses it, without channel binding.
 * Pure: strings in, strings out. The salted password (PBKDF2) is supplied by the caller so it
 * can be derived asynchronously and cached; see src/postgres/saltedPasswordCache.ts.
 */

export class ScramError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScramError';
  }
}

/** Iteration counts outside this range are refused: a hostile server could ask for billions. */
export const SCRAM_MAX_ITERATIONS = 10_000_000;
/** Server messages are a few hundred bytes; anything far larger is not SCRAM. */
const MAX_SERVER_MESSAGE_LENGTH = 4096;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Printable ASCII except ',' (RFC 5802 'printable'). */
const NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;

type State = 'initial' | 'sentFirst' | 'gotServerFirst' | 'sentFinal' | 'done';

export interface ScramServerFirst {
  salt: Buffer;
  iterations: number;
}

export class ScramSha256Client {
  readonly #clientNonce: string;
  readonly #clientFirstBare: string;
  #state: State = 'initial';
  #serverFirst = '';
  #serverNonce = '';
  #expectedServerSignature: Buffer | undefined;

  /**
   * @param opts.nonce injectable for tests; a random 18-byte base64 nonce otherwise.
   * @param opts.username PostgreSQL ignores it (the startup user counts) so '*' is sent by default;
   *   injectable to reproduce the RFC 7677 test vector.
   */
  constructor(opts: { nonce?: string; username?: string } = {}) {
    const nonce = opts.nonce ?? randomBytes(18).toString('base64');
    if (!NONCE.test(nonce)) throw new ScramError('SCRAM client nonce must be printable ASCII without commas.');
    this.#clientNonce = nonce;
    this.#clientFirstBare = `n=${escapeSaslName(opts.username ?? '*')},r=${nonce}`;
  }

  /** gs2 header 'n,,' (no channel binding) + client-first-message-bare. */
  clientFirstMessage(): string {
    this.#expect('initial', 'clientFirstMessage');
    this.#state = 'sentFirst';
    return `n,,${this.#clientFirstBare}`;
  }

  receiveServerFirst(msg: string): ScramServerFirst {
    this.#expect('sentFirst', 'receiveServerFirst');
    checkLength(msg, 'server-first-message');
    const attrs = parseAttributes(msg, 'server-first-message');
    if (attrs[0]?.[0] === 'm') throw new ScramError('The server requires a SCRAM extension (m=) that is not supported.');
    if (attrs.length < 3 || attrs[0][0] !== 'r' || attrs[1][0] !== 's' || attrs[2][0] !== 'i') {
      throw new ScramError('Malformed SCRAM server-first-message: expected "r=<nonce>,s=<salt>,i=<iterations>".');
    }
    const serverNonce = attrs[0][1];
    if (!serverNonce.startsWith(this.#clientNonce) || serverNonce.length <= this.#clientNonce.length || !NONCE.test(serverNonce)) {
      throw new ScramError('SCRAM server nonce does not extend the client nonce; the server (or something in between) is not speaking SCRAM correctly.');
    }
    const saltText = attrs[1][1];
    if (saltText.length === 0 || !BASE64.test(saltText)) throw new ScramError('SCRAM salt is not valid base64.');
    const iterText = attrs[2][1];
    if (!/^[0-9]{1,8}$/.test(iterText)) throw new ScramError(`SCRAM iteration count must be an integer between 1 and ${SCRAM_MAX_ITERATIONS}.`);
    const iterations = Number(iterText);
    if (iterations < 1 || iterations > SCRAM_MAX_ITERATIONS) {
      throw new ScramError(`SCRAM iteration count ${iterations} is outside 1..${SCRAM_MAX_ITERATIONS}.`);
    }
    this.#serverFirst = msg;
    this.#serverNonce = serverNonce;
    this.#state = 'gotServerFirst';
    return { salt: Buffer.from(saltText, 'base64'), iterations };
  }

  /** @param saltedPassword Hi(Normalize(password), salt, i) = PBKDF2-HMAC-SHA-256, 32 bytes. */
  clientFinalMessage(saltedPassword: Buffer): string {
    this.#expect('gotServerFirst', 'clientFinalMessage');
    if (saltedPassword.length !== 32) throw new ScramError('SCRAM salted password must be 32 bytes (PBKDF2-HMAC-SHA-256).');
    const withoutProof = `c=biws,r=${this.#serverNonce}`; // biws = base64('n,,')
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const clientKey = hmac(saltedPassword, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const clientSignature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) proof[i] = clientKey[i] ^ clientSignature[i];
    this.#expectedServerSignature = hmac(hmac(saltedPassword, 'Server Key'), authMessage);
    this.#state = 'sentFinal';
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Verifies the server signature: proves the server knew the password, not just relayed us. */
  receiveServerFinal(msg: string): void {
    this.#expect('sentFinal', 'receiveServerFinal');
    checkLength(msg, 'server-final-message');
    const attrs = parseAttributes(msg, 'server-final-message');
    const first = attrs[0];
    if (first?.[0] === 'e') throw new ScramError(`The server rejected SCRAM authentication: ${first[1]}.`);
    if (first?.[0] !== 'v' || !BASE64.test(first[1])) {
      throw new ScramError('Malformed SCRAM server-final-message: expected "v=<server signature>".');
    }
    const got = Buffer.from(first[1], 'base64');
    const want = this.#expectedServerSignature as Buffer;
    if (got.length !== want.length || !timingSafeEqual(got, want)) {
      throw new ScramError('SCRAM server signature does not match: the server could not prove it knows the password.');
    }
    this.#state = 'done';
  }

  /** True once the server signature was verified. */
  get completed(): boolean {
    return this.#state === 'done';
  }

  #expect(state: State, step: string): void {
    if (this.#state !== state) throw new ScramError(`SCRAM step ${step} called out of order (state ${this.#state}).`);
  }
}

/**
 * SASLprep (RFC 4013) as far as PostgreSQL needs it: ASCII passwords are used as they are;
 * others get non-ASCII spaces mapped to ' ', "mapped to nothing" characters removed and NFKC.
 * (PostgreSQL falls back to the raw bytes for passwords with prohibited characters; those
 * are rare enough in gateway-held credentials that the mapping here is not exhaustive.)
 */
export function saslPrep(password: string): string {
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  return password
    .replace(/[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000]/g, ' ')
    .replace(/[\u00ad\u034f\u1806\u180b-\u180d\u200c\u200d\u2060\ufe00-\ufe0f\ufeff]/g, '')
    .normalize('NFKC');
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function escapeSaslName(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

function checkLength(msg: string, what: string): void {
  if (typeof msg !== 'string' || msg.length === 0 || msg.length > MAX_SERVER_MESSAGE_LENGTH) {
    throw new ScramError(`SCRAM ${what} is empty or longer than ${MAX_SERVER_MESSAGE_LENGTH} characters.`);
  }
}

function parseAttributes(msg: string, what: string): Array<[string, string]> {
  return msg.split(',').map((part) => {
    if (part.length < 2 || part[1] !== '=' || !/^[A-Za-z]$/.test(part[0])) {
      throw new ScramError(`Malformed SCRAM ${what}: attribute "${part.slice(0, 16)}" is not "x=value".`);
    }
    return [part[0], part.slice(2)] as [string, string];
  });
}
