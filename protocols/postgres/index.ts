/** PostgreSQL wire codec for both sides of the gateway: pure bytes in, values out (and back). No sockets, no tokens. */
export * from './constants';
export * from './errors';
export { PgFramer, describeType } from './framing';
export type { Frame, FramerOptions } from './framing';
export * from './startup';
export * from './frontend';
export * from './backend';
