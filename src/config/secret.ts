import { inspect } from 'node:util';

/**
 * A credential the gateway holds (an upstream password). It never prints itself:
 * String(), JSON.stringify() and util.inspect() all give "[redacted]", so a secret
 * that slips into a log line or an error message stays hidden. Call reveal() only
 * at the point where the bytes go on the wire.
 */
export class Secret {
  readonly #value: string;
  /** Where the value came from, for messages: "env APP_RO_PASSWORD" or "file /etc/...". */
  readonly source: string;

  constructor(value: string, source: string) {
    this.#value = value;
    this.source = source;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return '[redacted]';
  }

  toJSON(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return `Secret(${this.source})`;
  }
}
