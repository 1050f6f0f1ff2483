import type net from 'node:net';

/** How long a refused client gets to read its last message before the socket is destroyed. */
const LINGER_MS = 2000;

/**
 * Write a last message and close. A client that never closes its side would otherwise hold
 * the socket half-open forever (and keep a shutting-down listener waiting).
 */
export function endWith(socket: net.Socket, last?: Buffer): void {
  if (socket.destroyed) return;
  if (last) socket.end(last);
  else socket.end();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
