/** PostgreSQL wire codec for both sides of the gateway: pure bytes in, values out (and back). No sockets, no tokens. */
export * from './constants';
export * from './errors';
export { PgFramer, captureTable, describeType } from './framing';
export type { CaptureFn, CaptureTable, Frame, FrameHandler, FramerOptions } from './framing';
export * from './startup';
export * from './frontend';
export * from './backend';
