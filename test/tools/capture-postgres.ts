/**
 * capture-postgres: a tiny recording TCP proxy that produces the golden byte vectors in
 * test/golden/postgres/. Run it by hand, point a real client (psql, node-postgres, psycopg2) at it,
 * and it writes each connection's two byte streams as commented hex files.
 *
 * Build and run (no ts-node in this repo):
 *   npx tsc test/tools/capture-postgres.ts --outDir /tmp/capture --module commonjs --target es2022 --types node --skipLibCheck
 *   node /tmp/capture/capture-postgres.js --listen 15432 --upstream 127.0.0.1:5432 \
 *        --out test/golden/postgres --name psql15-startup --note "psql 15 sslmode=disable application_name=golden"
 *   PGSSLMODE=disable psql "host=127.0.0.1 port=15432 user=postgres dbname=test application_name=golden" -c 'select 1'
 *
 * Each accepted connection N writes, when it closes:
 *   <out>/<name>[-N].client.hex   bytes the client sent (client -> server)
 *   <out>/<name>[-N].server.hex   bytes the server sent (server -> client)
 * The suffix -N is added from the second connection on (e.g. the CancelRequest connection psql opens).
 * Options: --limit BYTES keeps only the first BYTES of each direction; --once exits after the first
 * connection closes (otherwise Ctrl-C). Files start with '#' comment lines; the rest is hex, 16 bytes a line.
 * Only use it against test servers: the streams contain whatever passwords the client sent.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

interface Options {
  listen: number;
  upstreamHost: string;
  upstreamPort: number;
  out: string;
  name: string;
  note: string;
  limit: number;
  once: boolean;
}

function parseArgs(argv: string[]): Options {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const upstream = get('--upstream') ?? '127.0.0.1:5432';
  const [host, port] = upstream.split(':');
  const name = get('--name');
  if (!name) throw new Error('--name is required (base name of the golden files, e.g. psql15-startup)');
  return {
    listen: Number(get('--listen') ?? 15432),
    upstreamHost: host,
    upstreamPort: Number(port ?? 5432),
    out: get('--out') ?? 'test/golden/postgres',
    name,
    note: get('--note') ?? '',
    limit: Number(get('--limit') ?? Infinity),
    once: argv.includes('--once'),
  };
}

/** Appends chunks up to a byte limit. */
class Recorder {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit: number) {}
  add(chunk: Buffer): void {
    const room = this.limit - this.size;
    if (room <= 0) return;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.chunks.push(Buffer.from(part));
    this.size += part.length;
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export function toHexFile(bytes: Buffer, header: string[]): string {
  const lines = header.map((h) => `# ${h}`);
  for (let i = 0; i < bytes.length; i += 16) {
    lines.push(bytes.subarray(i, i + 16).toString('hex').replace(/(..)(?!$)/g, '$1 '));
  }
  return lines.join('\n') + '\n';
}

function main(): void {
  const o = parseArgs(process.argv.slice(2));
  fs.mkdirSync(o.out, { recursive: true });
  let connections = 0;
  const server = net.createServer((client) => {
    const n = ++connections;
    const base = n === 1 ? o.name : `${o.name}-${n}`;
    const upstream = net.connect(o.upstreamPort, o.upstreamHost);
    const fromClient = new Recorder(o.limit);
    const fromServer = new Recorder(o.limit);
    client.on('data', (c: Buffer) => {
      fromClient.add(c);
      upstream.write(c);
    });
    upstream.on('data', (c: Buffer) => {
      fromServer.add(c);
      client.write(c);
    });
    let closed = 0;
    const onClose = (): void => {
      client.destroy();
      upstream.destroy();
      if (++closed !== 2) return;
      const when = new Date().toISOString();
      const common = [`captured ${when} by test/tools/capture-postgres.ts (recording proxy -> ${o.upstreamHost}:${o.upstreamPort})`, `connection ${n}: ${o.note}`];
      const limit = Number.isFinite(o.limit) ? [`first ${o.limit} bytes of the direction only`] : [];
      fs.writeFileSync(path.join(o.out, `${base}.client.hex`), toHexFile(fromClient.bytes(), [...common, 'direction: client -> server', ...limit]));
      fs.writeFileSync(path.join(o.out, `${base}.server.hex`), toHexFile(fromServer.bytes(), [...common, 'direction: server -> client', ...limit]));
      process.stderr.write(`wrote ${base}.{client,server}.hex\n`);
      if (o.once) server.close();
    };
    client.on('close', onClose);
    upstream.on('close', onClose);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  server.listen(o.listen, '127.0.0.1', () => process.stderr.write(`recording 127.0.0.1:${o.listen} -> ${o.upstreamHost}:${o.upstreamPort}\n`));
}

if (require.main === module) main();
