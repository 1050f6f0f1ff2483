import fc from 'fast-check';
import { MAX_PACKET_PAYLOAD, PacketError, encodePacket } from '../../protocols/mysql';
import { MysqlCommandSplitter, type ClientItem } from '../../src/mysql/commandSplitter';
import { classifyQuery } from '../../src/mysql/statements';
import { MysqlConnectionRegistry, type KillTarget } from '../../src/mysql/connectionIds';
import { MysqlPreparedStatements, LAST_PREPARED_STATEMENT } from '../../src/mysql/preparedStatements';

/** The pure pieces of the MySQL session: command splitting, USE/KILL recognition, connection ids. */

function cmd(payload: string | Buffer): Buffer {
  return encodePacket(0, typeof payload === 'string' ? Buffer.from(payload) : payload);
}

/** Feeds `stream` cut at `cuts` and returns the items plus what they say about each command. */
function split(stream: Buffer, cuts: number[], hold: number): { items: ClientItem[]; raw: Buffer } {
  const s = new MysqlCommandSplitter(hold);
  const items: ClientItem[] = [];
  let prev = 0;
  for (const c of [...cuts.filter((c) => c > 0 && c < stream.length).sort((a, b) => a - b), stream.length]) {
    items.push(...s.push(stream.subarray(prev, c)));
    prev = c;
  }
  expect(s.atBoundary).toBe(true);
  const raw = Buffer.concat(items.flatMap((i) => (i.kind === 'command' ? i.raw : [i.raw])));
  return { items, raw };
}

describe('MysqlCommandSplitter', () => {
  const payloads = ['\x03SELECT 1', '\x0e', '\x19\x01\x00\x00\x00', '\x03' + 'x'.repeat(100)];
  const stream = Buffer.concat(payloads.map(cmd));

  test('one chunk: every command whole, raw bytes unchanged and not copied', () => {
    const s = new MysqlCommandSplitter(1024);
    const items = s.push(stream);
    expect(items.map((i) => i.kind === 'command' && i.head.toString('latin1'))).toEqual(payloads);
    expect(items.every((i) => i.kind === 'command' && i.complete && i.raw.length === 1 && i.raw[0].buffer === stream.buffer)).toBe(true);
    expect(Buffer.concat(items.flatMap((i) => (i.kind === 'command' ? i.raw : [])))).toEqual(stream);
  });

  test('every single cut point and every pair of them gives the same commands', () => {
    for (let a = 0; a <= stream.length; a++) {
      for (let b = a; b <= stream.length; b += 7) {
        const { items, raw } = split(stream, [a, b], 1024);
        expect(raw).toEqual(stream);
        expect(items.map((i) => i.kind === 'command' && i.complete && i.head.toString('latin1'))).toEqual(payloads);
      }
    }
  });

  test('a command longer than the hold limit is emitted with its head, then streamed as tails', () => {
    const long = cmd('\x03' + 'y'.repeat(500));
    const { items, raw } = split(Buffer.concat([long, cmd('\x0e')]), [100, 200, 300, 504], 64);
    expect(raw).toEqual(Buffer.concat([long, cmd('\x0e')]));
    const first = items[0];
    expect(first).toMatchObject({ kind: 'command', complete: false, payloadLength: 501 });
    expect(first.kind === 'command' && first.head.toString('latin1')).toBe('\x03' + 'y'.repeat(63));
    const tails = items.filter((i) => i.kind === 'tail');
    expect(tails[tails.length - 1]).toMatchObject({ complete: true });
    expect(items[items.length - 1]).toMatchObject({ kind: 'command', complete: true, payloadLength: 1 });
  });

  test('a 16 MiB payload continues in the next packet: one command', () => {
    const body = Buffer.alloc(MAX_PACKET_PAYLOAD + 10, 0x61);
    body[0] = 0x03;
    const { items, raw } = split(encodePacket(0, body), [5, 1 << 20, MAX_PACKET_PAYLOAD + 3, MAX_PACKET_PAYLOAD + 6], 1024);
    expect(raw.length).toBe(body.length + 8);
    expect(items[0]).toMatchObject({ kind: 'command', complete: false, payloadLength: MAX_PACKET_PAYLOAD });
    expect(items.filter((i) => i.kind === 'command')).toHaveLength(1);
    expect(items[items.length - 1]).toMatchObject({ kind: 'tail', complete: true });
  });

  test('scan hands out the same items as push, whatever the chunking', () => {
    const all = Buffer.concat([stream, cmd('\x03' + 'z'.repeat(300)), cmd('\x0e')]);
    fc.assert(
      fc.property(fc.array(fc.nat(all.length), { maxLength: 8 }), fc.constantFrom(16, 64, 1024), (cuts, hold) => {
        const pushed = new MysqlCommandSplitter(hold);
        const scanned = new MysqlCommandSplitter(hold);
        const a: ClientItem[] = [];
        const b: ClientItem[] = [];
        let prev = 0;
        for (const c of [...cuts.sort((x, y) => x - y), all.length]) {
          const chunk = all.subarray(prev, c);
          prev = c;
          a.push(...pushed.push(chunk));
          scanned.scan(chunk, (item) => b.push(item));
          expect(scanned.atBoundary).toBe(pushed.atBoundary);
        }
        expect(b).toEqual(a);
        expect(Buffer.concat(b.flatMap((i) => (i.kind === 'command' ? i.raw : [i.raw])))).toEqual(all);
      }),
    );
  });

  test('a continuation out of sequence is a framing error', () => {
    const s = new MysqlCommandSplitter(64);
    const first = Buffer.alloc(4 + 10);
    first.writeUIntLE(MAX_PACKET_PAYLOAD, 0, 3);
    s.push(first);
    s.push(Buffer.alloc(MAX_PACKET_PAYLOAD - 10));
    expect(() => s.push(Buffer.from([1, 0, 0, 7, 0x61]))).toThrow(PacketError);
  });

  test('property: any chunking of any command stream', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(3000), { maxLength: 12 }),
        fc.integer({ min: 1, max: 128 }),
        (bodies, cuts, hold) => {
          const stream = Buffer.concat(bodies.map((b) => cmd(Buffer.from(b))));
          const { items, raw } = split(stream, cuts, hold);
          expect(raw).toEqual(stream);
          const commands = items.filter((i): i is Extract<ClientItem, { kind: 'command' }> => i.kind === 'command');
          expect(commands.map((c) => c.head)).toEqual(bodies.map((b) => Buffer.from(b).subarray(0, hold)));
          expect(commands.map((c) => c.payloadLength)).toEqual(bodies.map((b) => b.length));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('classifyQuery', () => {
  test.each([
    ['USE app', { kind: 'use', schema: 'app' }],
    ['  use `my db` ; ', { kind: 'use', schema: 'my db' }],
    ['#note\nUse analytics', { kind: 'use', schema: 'analytics' }],
    ['USE `we``ird`', { kind: 'use', schema: 'we`ird' }],
    ["USE 'app'", { kind: 'other' }],
    ['KILL 42', { kind: 'kill', scope: 'connection', id: 42 }],
    ['-- from the CLI\nKILL QUERY 1150892753', { kind: 'kill', scope: 'query', id: 1150892753 }],
    ['kill hard connection 7;', { kind: 'kill', scope: 'connection', id: 7 }],
    ['/*!50000 KILL QUERY 9 */', { kind: 'kill', scope: 'query', id: 9 }],
    ['KILL USER bob', { kind: 'unsupported_kill' }],
    ['KILL QUERY ID 5', { kind: 'unsupported_kill' }],
    ['KILL CONNECTION_ID()', { kind: 'unsupported_kill' }],
    ['KILL 99999999999', { kind: 'unsupported_kill' }],
    ['SELECT 1; USE analytics', { kind: 'embedded', keyword: 'USE' }],
    ['select sleep(1);kill 5', { kind: 'embedded', keyword: 'KILL' }],
    ["SELECT 'use x'", { kind: 'other' }],
    ["SELECT 'a;use b', \"c;kill 1\"", { kind: 'other' }],
    ['/* kill 1 */ SELECT 1', { kind: 'other' }],
    ['SELECT `use` FROM t', { kind: 'other' }],
    ["SELECT 'it\\'s; use x'", { kind: 'other' }],
    ['USER()', { kind: 'other' }],
    ['USE', { kind: 'other' }],
    ['', { kind: 'other' }],
  ])('%j', (sql, intent) => {
    expect(classifyQuery(sql)).toEqual(intent);
  });
});

describe('MysqlConnectionRegistry', () => {
  const target = (owner: string, upstreamThreadId?: number): KillTarget => ({
    owner, upstreamThreadId, killQuery: async () => undefined, killConnection: () => undefined,
  });

  test('ids are unique, above any plausible upstream thread id, and below 2^31', () => {
    const r = new MysqlConnectionRegistry();
    const ids = Array.from({ length: 500 }, () => r.issue(target('a')));
    expect(new Set(ids).size).toBe(500);
    expect(ids.every((id) => id >= 2 ** 30 && id < 2 ** 31)).toBe(true);
  });

  test('find: own sessions only, by gateway id or by a unique upstream thread id', () => {
    const r = new MysqlConnectionRegistry();
    const mine = target('alice', 17);
    const theirs = target('bob', 18);
    const idMine = r.issue(mine);
    const idTheirs = r.issue(theirs);
    expect(r.find(idMine, 'alice')).toBe(mine);
    expect(r.find(idTheirs, 'alice')).toBeUndefined();
    expect(r.find(17, 'alice')).toBe(mine);
    expect(r.find(18, 'alice')).toBeUndefined();
    r.issue(target('alice', 17)); // the same thread id on another upstream: ambiguous
    expect(r.find(17, 'alice')).toBeUndefined();
    r.revoke(idMine);
    expect(r.find(idMine, 'alice')).toBeUndefined();
  });
});

test('MysqlPreparedStatements: bounded, closable, and knows the "last prepared" id', () => {
  const p = new MysqlPreparedStatements();
  for (let i = 1; i <= 1500; i++) p.prepared(i, `SELECT ${i}`);
  expect(p.size).toBe(1000);
  expect(p.sqlOf(1)).toBe('<prepared statement 1>');
  expect(p.sqlOf(1500)).toBe('SELECT 1500');
  expect(p.sqlOf(LAST_PREPARED_STATEMENT)).toBe('SELECT 1500');
  p.closed(1500);
  expect(p.sqlOf(1500)).toBe('<prepared statement 1500>');
});
