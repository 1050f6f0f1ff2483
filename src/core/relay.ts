/** What the lifecycle needs from a protocol's relay, and what a relay reports when it ends. */

/** Where a session is, as an operator sees it. */
export type SessionState = 'handshake' | 'idle' | 'transaction' | 'active';

/** The error a relay sends before it closes: the protocol's own error code type and a message for the agent. */
export interface Notice<Code> {
  code: Code;
  message: string;
}

export interface RelayEnd {
  reason: string;
  upstreamReusable: boolean;
  bytesFromClient: number;
  bytesToClient: number;
  queries: number;
}

export interface Relay<Code> {
  start(): void;
  /**
   * Ends the relay at once. With `notice`, the client gets that error first; `graceful` closes
   * after what was already written (a final answer) instead of dropping the connection.
   */
  stop(reason: string, notice?: Notice<Code>, graceful?: boolean): void;
  /** Takes no new statements from the client and calls `onRest` whenever the session is at rest. */
  hold(onRest: () => void): void;
  /** Nothing outstanding: no statement running, both directions at a message boundary. */
  atRest(): boolean;
  /** Asks the upstream to stop the statement it is running (CancelRequest, KILL QUERY); no-op when idle. */
  interrupt(): void;
  readonly state: SessionState;
  /** When the statement now running began (ms since the epoch), or undefined when idle. */
  readonly busySince: number | undefined;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
  readonly queries: number;
}
