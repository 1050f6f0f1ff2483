/**
 * capture-mysql: records real MySQL/MariaDB conversations as golden hex files.
 *
 * Run by hand (not part of the test suite). Compile once, then run:
 *
 *   npx tsc --outDir /tmp/capture-mysql --module commonjs --target es2022 --esModuleInterop --skipLibCheck \
 *     test/tools/capture-mysql.ts
 *   node /tmp/capture-mysql/test/tools/capture-mysql.js proxy --listen 13306 --out test/golden/mysql/x.hex --note "..."
 *   MYSQL_PWD=secret mariadb -h127.0.0.1 -P13306 -ucodec -e 'select 1'     # in another shell
 *
 * Modes:
 *   proxy   A recording TCP proxy between one real client and the real server
 *           (--upstream, default 127.0.0.1:3306). Every chunk is written as it was
 *           received, tagged C (client to server) or S (server to client); the file is
 *           written when either side closes. With --advertise-ssl the proxy sets
 *           CLIENT_SSL in the server greeting, records the client's SSLRequest and
 *           then closes (the server here has TLS off; this is how the SSLRequest of a
 *           real client is captured).
 *   gateway A gateway-like fake server built on protocols/mysql, for what the real
 *           server here cannot produce: it greets with GATEWAY_CAPABILITIES (without
 *           CLIENT_SSL unless --advertise-ssl: libmariadb then always asks for TLS) and
 *           mysql_native_password (scramble --scramble hex, default 01..14), answers
 *           the HandshakeResponse with AuthSwitchRequest mysql_clear_password, records
 *           the clear reply, sends OK, answers the first command with ERR 1047 and
 *           closes. An SSLRequest is recorded and the connection closed. The client
 *           bytes are real; the server bytes are the codec's own.
 *   client  A scripted client built on protocols/mysql (for what no stock client
 *           sends, e.g. CLIENT_DEPRECATE_EOF). It logs in with mysql_native_password
 *           (--user, --password, --db), with the client capabilities --caps (hex;
 *           default GATEWAY_CAPABILITIES without SSL), then sends each --query as
 *           COM_QUERY and each --prepare as COM_STMT_PREPARE, in order, then COM_QUIT.
 *
 * File format: lines starting with '#' are comments (the note, the date, the
 * command line); every other line is "C <hex>" or "S <hex>", one received chunk.
 */
import { createConnection, createServer, Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import {
  CLIENT_SSL,
  COM_QUIT,
  GATEWAY_CAPABILITIES,
  PacketFramer,
  ResponseTracker,
  UTF8MB4_GENERAL_CI,
  COM_QUERY,
  COM_STMT_PREPARE,
  decodeHandshakeV10,
  encodeHandshakeResponse41,
  encodePacket,
  encodeQuery,
  encodeSimpleCommand,
  encodeStmtPrepare,
  isErr,
  decodeErr,
  nativePasswordScramble,
  MAX_PACKET_PAYLOAD,
  SERVER_STATUS_AUTOCOMMIT,
  ErrorCode,
  encodeAuthSwitchRequest,
  encodeErr,
  encodeHandshakeV10,
  encodeOk,
  isSslRequest,
} from '../../protocols/mysql';

interface Args {
  mode: string;
  opts: Map<string, string[]>;
}

function parseArgs(argv: string[]): Args {
  const [mode, ...rest] = argv;
  const opts = new Map<string, string[]>();
  for (let i = 0; i < rest.length; i++) {
    const key = rest[i].replace(/^--/, '');
    const flag = key === 'advertise-ssl';
    const value = flag ? 'yes' : rest[++i];
    opts.set(key, [...(opts.get(key) ?? []), value]);
  }
  return { mode: mode ?? '', opts };
}

function one(a: Args, key: string, fallback?: string): string {
  const v = a.opts.get(key)?.[0] ?? fallback;
  if (v === undefined) throw new Error(`missing --${key}`);
  return v;
}

type Chunk = { dir: 'C' | 'S'; data: Buffer };

function writeGolden(out: string, note: string, chunks: Chunk[]): void {
  const lines = [
    `# ${note}`,
    `# captured ${new Date().toISOString()} with test/tools/capture-mysql.ts ${process.argv.slice(2).join(' ')}`,
    '# C = client to server, S = server to client; one line per TCP chunk as received',
    ...chunks.map((c) => `${c.dir} ${c.data.toString('hex')}`),
  ];
  writeFileSync(out, lines.join('\n') + '\n');
  process.stderr.write(`wrote ${chunks.length} chunks to ${out}\n`);
}

function proxy(a: Args): void {
  const [host, port] = one(a, 'upstream', '127.0.0.1:3306').split(':');
  const advertiseSsl = a.opts.has('advertise-ssl');
  const out = one(a, 'out');
  const note = one(a, 'note');
  const server = createServer((client) => {
    const chunks: Chunk[] = [];
    const upstream = createConnection({ host, port: Number(port) });
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      writeGolden(out, note, chunks);
      client.destroy();
      upstream.destroy();
      server.close();
    };
    let greeted = false;
    upstream.on('data', (d: Buffer) => {
      if (advertiseSsl && !greeted) {
        greeted = true;
        // Greeting: header(4) 0x0a version\0 connid(4) scramble(8) filler(1) caps-low(2).
        const d2 = Buffer.from(d);
        const capsAt = d2.indexOf(0, 5) + 1 + 4 + 8 + 1;
        d2.writeUInt16LE(d2.readUInt16LE(capsAt) | CLIENT_SSL, capsAt);
        chunks.push({ dir: 'S', data: d2 });
        client.write(d2);
        return;
      }
      chunks.push({ dir: 'S', data: Buffer.from(d) });
      client.write(d);
    });
    client.on('data', (d: Buffer) => {
      chunks.push({ dir: 'C', data: Buffer.from(d) });
      if (advertiseSsl) return finish(); // the SSLRequest; a TLS ClientHello would follow
      upstream.write(d);
    });
    client.on('close', finish);
    upstream.on('close', finish);
    client.on('error', finish);
    upstream.on('error', finish);
  });
  server.listen(Number(one(a, 'listen')), '127.0.0.1', () => process.stderr.write('listening; connect one client\n'));
}

function gateway(a: Args): void {
  const out = one(a, 'out');
  const note = one(a, 'note');
  const scramble = Buffer.from(one(a, 'scramble', '0102030405060708090a0b0c0d0e0f1011121314'), 'hex');
  const server = createServer((client) => {
    const chunks: Chunk[] = [];
    const framer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD });
    let step = 0;
    const send = (seq: number, payload: Buffer): void => {
      const bytes = encodePacket(seq, payload);
      chunks.push({ dir: 'S', data: bytes });
      client.write(bytes);
    };
    const finish = (): void => {
      if (step < 0) return;
      step = -1;
      writeGolden(out, note, chunks);
      client.destroy();
      server.close();
    };
    send(
      0,
      encodeHandshakeV10({
        serverVersion: '10.11.19-MariaDB-tokengate-capture',
        connectionId: 7,
        authPluginData: scramble,
        capabilities: a.opts.has('advertise-ssl') ? GATEWAY_CAPABILITIES : (GATEWAY_CAPABILITIES & ~CLIENT_SSL) >>> 0,
        characterSet: UTF8MB4_GENERAL_CI,
        statusFlags: SERVER_STATUS_AUTOCOMMIT,
        authPluginName: 'mysql_native_password',
      }),
    );
    client.on('data', (d: Buffer) => {
      chunks.push({ dir: 'C', data: Buffer.from(d) });
      for (const p of framer.push(d)) {
        if (step === 0 && isSslRequest(p.payload)) return finish();
        if (step === 0) send(p.sequenceId + 1, encodeAuthSwitchRequest('mysql_clear_password', Buffer.alloc(0)));
        else if (step === 1) send(p.sequenceId + 1, encodeOk({ statusFlags: SERVER_STATUS_AUTOCOMMIT }, GATEWAY_CAPABILITIES));
        else if (step === 2) {
          send(1, encodeErr({ ...ErrorCode.UNKNOWN_COMMAND, message: 'capture server: no commands' }));
          // The client's COM_QUIT or close ends the capture; this deadline bounds a client that does neither.
          setTimeout(finish, 200);
        } else if (p.payload[0] === 0x01) return finish(); // COM_QUIT, recorded above
        step++;
      }
    });
    client.on('close', finish);
    client.on('error', finish);
  });
  server.listen(Number(one(a, 'listen')), '127.0.0.1', () => process.stderr.write('listening; connect one client\n'));
}

async function scriptedClient(a: Args): Promise<void> {
  const [host, port] = one(a, 'upstream', '127.0.0.1:3306').split(':');
  const caps = parseInt(one(a, 'caps', (GATEWAY_CAPABILITIES & ~CLIENT_SSL).toString(16)), 16) >>> 0;
  const chunks: Chunk[] = [];
  const sock: Socket = createConnection({ host, port: Number(port) });
  const framer = new PacketFramer({ maxPayloadLength: MAX_PACKET_PAYLOAD });
  const queue: Buffer[] = [];
  let wake: (() => void) | undefined;
  sock.on('data', (d: Buffer) => {
    chunks.push({ dir: 'S', data: Buffer.from(d) });
    for (const p of framer.push(d)) queue.push(p.payload);
    wake?.();
  });
  const next = async (): Promise<Buffer> => {
    while (queue.length === 0) await new Promise<void>((r) => (wake = r));
    return queue.shift()!;
  };
  const send = (seq: number, payload: Buffer): void => {
    const bytes = encodePacket(seq, payload);
    chunks.push({ dir: 'C', data: bytes });
    sock.write(bytes);
  };
  const greeting = decodeHandshakeV10(await next());
  const negotiated = (caps & greeting.capabilities) >>> 0;
  send(
    1,
    encodeHandshakeResponse41({
      capabilities: negotiated,
      maxPacketSize: MAX_PACKET_PAYLOAD,
      characterSet: UTF8MB4_GENERAL_CI,
      username: one(a, 'user'),
      authResponse: nativePasswordScramble(one(a, 'password', ''), greeting.authPluginData),
      database: a.opts.get('db')?.[0],
      authPluginName: 'mysql_native_password',
    }),
  );
  const login = await next();
  if (isErr(login)) throw new Error(`login failed: ${decodeErr(login).message}`);
  // Commands in command-line order: --query and --prepare interleaved as given.
  const steps: Array<[number, string]> = [];
  const argv = process.argv.slice(3);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--query') steps.push([COM_QUERY, argv[++i]]);
    if (argv[i] === '--prepare') steps.push([COM_STMT_PREPARE, argv[++i]]);
  }
  const tracker = new ResponseTracker(negotiated);
  for (const [command, sql] of steps) {
    send(0, command === COM_QUERY ? encodeQuery(sql) : encodeStmtPrepare(sql));
    tracker.begin(command);
    for (;;) {
      const p = await next();
      if (tracker.onPacket(p, p.length) === 'done') break;
    }
  }
  send(0, encodeSimpleCommand(COM_QUIT));
  await new Promise((r) => sock.on('close', r));
  writeGolden(one(a, 'out'), one(a, 'note'), chunks);
}

const args = parseArgs(process.argv.slice(2));
if (args.mode === 'proxy') proxy(args);
else if (args.mode === 'gateway') gateway(args);
else if (args.mode === 'client') {
  scriptedClient(args).catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write('usage: capture-mysql proxy|gateway|client [options]  (see the comment at the top of the file)\n');
  process.exit(2);
}
