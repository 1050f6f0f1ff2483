import { SEED_SQL } from './seed';

/**
 * PostgreSQL for the demo without installing one: PGlite (PostgreSQL compiled to WebAssembly,
 * in memory) served on a loopback TCP port by pglite-socket.
 *
 * PGlite is a single backend: every connection shares one session and runs as the superuser
 * `postgres`, whatever user logs in. The gateway's grant decision, audit and application_name
 * still show who is who; SQL privileges per role need a real server (`tokengate demo --postgres`).
 *
 * Both packages ship CommonJS builds, loaded lazily here so that other commands never pay for
 * the WebAssembly start-up. PGlite itself dynamic-imports node:fs at start, which Jest's VM
 * cannot do: tests run the demo in a child process.
 */
export interface EmbeddedPostgres {
  host: string;
  port: number;
  /** PGlite has one database. */
  database: string;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(): Promise<EmbeddedPostgres> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const db = await PGlite.create();
  let server: InstanceType<typeof PGLiteSocketServer> | undefined;
  try {
    await db.exec(SEED_SQL);
    server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 20 });
    await server.start();
  } catch (err) {
    await db.close().catch(() => undefined);
    throw new Error(`could not start the embedded PostgreSQL (PGlite): ${(err as Error).message}`);
  }
  const conn = server.getServerConn();
  const port = Number(conn.slice(conn.lastIndexOf(':') + 1));
  const running = server;
  return {
    host: '127.0.0.1',
    port,
    database: 'postgres',
    async stop() {
      await running.stop();
      await db.close();
    },
  };
}
