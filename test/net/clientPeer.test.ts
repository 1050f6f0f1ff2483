/**
 * identifyPeer over real loopback sockets: a trusted peer's header split at every offset (and sent
 * byte by byte) yields the client it names and leaves the bytes after it for the session; a
 * missing or malformed header, or none in time, becomes a refusal; a peer that closes first
 * yields nothing; an untrusted peer is itself the client and may not send a header.
 */
import net from 'node:net';
import { parseCidr } from '../../src/config/cidr';
import { AddressSet } from '../../src/net/addressSet';
import { identifyPeer, type ClientPeer, type ProxyProtocolOptions } from '../../src/net/clientPeer';
import { encodeProxyV1, encodeProxyV2 } from './proxyEncode';

const CLIENT = { family: 'tcp6' as const, sourceAddress: '2001:db8::7', sourcePort: 5000, destinationAddress: '2001:db8::1', destinationPort: 6432 };
const PAYLOAD = Buffer.from('\x00\x00\x00\x08\x04\xd2\x16\x2f the session reads this');

interface Accepted {
  peer: ClientPeer;
  /** Everything the session read after the header, until the client closed. */
  rest: Promise<Buffer>;
}

/** A listener that runs identifyPeer on each connection, as TcpListener does. */
async function listener(proxy: ProxyProtocolOptions | undefined): Promise<{ port: number; next(): Promise<Accepted | 'closed'>; close(): Promise<void> }> {
  const queue: Array<(a: Accepted | 'closed') => void> = [];
  const ready: Array<Accepted | 'closed'> = [];
  const deliver = (a: Accepted | 'closed'): void => {
    const waiter = queue.shift();
    if (waiter) waiter(a);
    else ready.push(a);
  };
  const server = net.createServer((socket) => {
    socket.once('close', () => !delivered.has(socket) && deliver('closed'));
    identifyPeer(socket, proxy, (peer) => {
      delivered.add(socket);
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      const rest = new Promise<Buffer>((resolve) => socket.on('end', () => {
        resolve(Buffer.concat(chunks));
        socket.end();
      }));
      socket.resume();
      deliver({ peer, rest });
    });
  });
  const delivered = new WeakSet<net.Socket>();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    next: () => (ready.length ? Promise.resolve(ready.shift()!) : new Promise((resolve) => queue.push(resolve))),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Connects and writes `parts` one after another, each after the previous was flushed, then ends. */
async function send(port: number, parts: Buffer[], end = true): Promise<net.Socket> {
  const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
  await new Promise((resolve) => s.once('connect', resolve));
  for (const p of parts) await new Promise<void>((resolve) => s.write(p, () => resolve()));
  if (end) s.end();
  s.on('error', () => undefined);
  return s;
}

const trusted = (timeoutMs = 2000): ProxyProtocolOptions => ({ trusted: new AddressSet([parseCidr('127.0.0.1')]), timeoutMs: () => timeoutMs });

describe('identifyPeer', () => {
  test.each([
    ['v1', () => encodeProxyV1(CLIENT)],
    ['v2 with TLVs', () => encodeProxyV2(CLIENT, Buffer.from([0x04, 0x00, 0x03, 0, 0, 0, 0x01, 0x00, 0x02, 0x68, 0x32]))],
  ])('a %s header split at every offset gives the client and leaves the bytes after it', async (_v, header) => {
    const l = await listener(trusted());
    try {
      const bytes = Buffer.concat([header(), PAYLOAD]);
      for (let k = 1; k < bytes.length; k++) {
        await send(l.port, [bytes.subarray(0, k), bytes.subarray(k)]);
        const a = await l.next();
        if (a === 'closed') throw new Error(`closed at split ${k}`);
        expect(a.peer).toMatchObject({ address: CLIENT.sourceAddress, port: CLIENT.sourcePort, via: expect.stringMatching(/^127\.0\.0\.1:\d+$/), refuseProxyHeader: false });
        expect(a.peer.refusal).toBeUndefined();
        expect(await a.rest).toEqual(PAYLOAD);
      }
    } finally {
      await l.close();
    }
  });

  test('a header sent one byte at a time', async () => {
    const l = await listener(trusted());
    try {
      const bytes = Buffer.concat([encodeProxyV2(CLIENT), PAYLOAD]);
      await send(l.port, [...bytes].map((b) => Buffer.from([b])));
      const a = await l.next();
      expect(a !== 'closed' && a.peer.address).toBe(CLIENT.sourceAddress);
      expect(a !== 'closed' && (await a.rest)).toEqual(PAYLOAD);
    } finally {
      await l.close();
    }
  });

  test('a trusted peer without a header, with a malformed one, or silent past the timeout: a refusal for the session to send', async () => {
    const l = await listener(trusted(300));
    try {
      await send(l.port, [PAYLOAD]);
      const missing = await l.next();
      expect(missing !== 'closed' && missing.peer.refusal).toMatch(/did not start with a PROXY protocol header/);
      await send(l.port, [Buffer.from('PROXY TCP4 1.2.3.4 ::1 1 2\r\n')]);
      const malformed = await l.next();
      expect(malformed !== 'closed' && malformed.peer.refusal).toMatch(/not IPv4/);
      const silent = await send(l.port, [], false);
      const timedOut = await l.next();
      expect(timedOut !== 'closed' && timedOut.peer).toMatchObject({ refusal: 'no PROXY protocol header within 0.3s', address: '127.0.0.1' });
      silent.destroy();
    } finally {
      await l.close();
    }
  });

  test('a trusted peer that closes before its header is complete: no session', async () => {
    const l = await listener(trusted());
    try {
      await send(l.port, [encodeProxyV2(CLIENT).subarray(0, 20)]);
      expect(await l.next()).toBe('closed');
    } finally {
      await l.close();
    }
  });

  test('an untrusted peer is the client; it is marked so that a header from it is refused', async () => {
    const l = await listener({ trusted: new AddressSet([parseCidr('10.0.0.0/8')]), timeoutMs: () => 1000 });
    try {
      await send(l.port, [PAYLOAD]);
      const a = await l.next();
      expect(a !== 'closed' && a.peer).toMatchObject({ address: '127.0.0.1', refuseProxyHeader: true });
      expect(a !== 'closed' && a.peer.via).toBeUndefined();
    } finally {
      await l.close();
    }
  });

  test('without proxyProtocol every peer is the client and nothing is screened', async () => {
    const l = await listener(undefined);
    try {
      await send(l.port, [encodeProxyV1(CLIENT)]);
      const a = await l.next();
      expect(a !== 'closed' && a.peer).toMatchObject({ address: '127.0.0.1', refuseProxyHeader: false });
    } finally {
      await l.close();
    }
  });
});
