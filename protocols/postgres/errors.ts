import { SqlState } from './constants';

/** Why the framer refused a length field. */
export type FrameErrorCode = 'length_too_small' | 'length_too_large' | 'unexpected_data';

/**
 * A message length field that cannot be honoured. The connection must be closed: after a bad
 * length there is no way to find the next message boundary.
 */
export class FrameError extends Error {
  readonly sqlState = SqlState.PROTOCOL_VIOLATION;
  constructor(
    readonly code: FrameErrorCode,
    message: string,
    /** The length field that was refused, for callers that explain a too-large message in their own terms. */
    readonly lengthField?: number,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

/** A message whose layout is not what the PostgreSQL protocol says it must be. */
export class ProtocolError extends Error {
  readonly sqlState = SqlState.PROTOCOL_VIOLATION;
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}
