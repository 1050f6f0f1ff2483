import type net from 'node:net';

/** Records the length of every write() on `socket` (the writes still happen): for "one write" assertions. */
export function recordWrites(socket: net.Socket): number[] {
  const writes: number[] = [];
  const write = socket.write.bind(socket) as (b: Buffer) => boolean;
  socket.write = ((b: Buffer) => {
    writes.push(b.length);
    return write(b);
  }) as typeof socket.write;
  return writes;
}
