/** MySQL / MariaDB wire codec: pure (bytes in, values out). See each module for details. */
export * from './constants';
export * from './errors';
export * from './lenenc';
export * from './framing';
export * from './handshake';
export * from './auth';
export * from './packets';
export * from './command';
export * from './response';
