import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadConfig } from '../../config/load';
import type { HostPort, Protocol } from '../../config/schema';
import { startGateway, type Gateway } from '../../core/gateway';
import { startDevIssuer } from '../devIssuer';
import { demoBanner } from './banner';
import { DEMO_AUDIENCE, demoClients } from './clients';
import { DEMO_DATABASE_ALIAS, demoConfigYaml, passwordFile, placeholderPassword, type DemoUpstream } from './demoConfig';
import { startEmbeddedPostgres } from './embeddedPostgres';
import { anyFreePort, portFree } from './port';
import { DEMO_DB_USERS } from './seed';
import { checkSchemaName, DEFAULT_DEMO_SCHEMA, mysqlAccountHelp, SeedError, seedMysql, seedPostgres, type SeededSchema } from './seedServer';
import { parseServerUrl, type ServerTarget } from './serverUrl';
import { demoStatePath, ensureDemoDir, processAlive, removeDemoState, writeDemoState, type DemoState } from './stateFile';

/**
 * `tokengate demo`: the development issuer, a database and the gateway, all on loopback, wired
 * by a generated config. Everything runs in this one process, so stopping it leaves nothing behind.
 */
export interface DemoOptions {
  /** The gateway's PostgreSQL port (6432); 0 = any free port. */
  port: number;
  /** The gateway's MySQL port (6033), with --mysql. */
  mysqlPort: number;
  /** A real PostgreSQL instead of the embedded PGlite. */
  postgres?: string;
  /** A real MySQL/MariaDB, served on a MySQL listener next to the PostgreSQL one. */
  mysql?: string;
  /** The schema (MySQL: database) the sample tables go in on a real server; default tokengate_demo. */
  schema?: string;
  /** Progress and notices for the operator (stderr). */
  notice: (msg: string) => void;
}

export interface RunningDemo {
  state: DemoState;
  banner: string;
  gateway: Gateway;
  stop(): Promise<void>;
}

/** The demo could not start: the message says why and what to do. */
export class DemoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DemoError';
  }
}

const LOOPBACK = '127.0.0.1';

/** The package root: where `npx tokengate` and require('pg') resolve, for the printed commands. */
function projectDir(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'tokengate') return dir;
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

function refuseSecondDemo(): void {
  const path = demoStatePath();
  if (!existsSync(path)) return;
  try {
    const other = JSON.parse(readFileSync(path, 'utf8')) as Partial<DemoState>;
    if (typeof other.pid === 'number' && other.pid !== process.pid && processAlive(other.pid)) {
      throw new DemoError(`a demo is already running (pid ${other.pid}, gateway ${other.postgres ?? '?'}); stop it with Ctrl-C in its terminal first, or delete ${path} if that process is not a tokengate demo`);
    }
  } catch (err) {
    if (err instanceof DemoError) throw err;
    // Unreadable or stale: it is replaced below.
  }
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new DemoError(`a port must be a number from 0 to 65535, got ${port}`);
}

/** Both roles log in as the URL's user, to `database`. */
function upstreamFor(t: ServerTarget, database = t.database): DemoUpstream {
  const login = { user: t.user, password: t.password };
  return { host: t.host, port: t.port, database, tls: t.tls, reader: login, writer: login };
}

/** The sample tables on a real server; its refusals become the demo's (exit 2). */
async function seeded(run: () => Promise<SeededSchema>): Promise<SeededSchema> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof SeedError) throw new DemoError(err.message);
    throw err;
  }
}

/** MySQL: the demo's database is the URL's, or --schema's (they must agree), or tokengate_demo. */
function mysqlSchema(t: ServerTarget, schema: string | undefined): string {
  if (t.database && schema !== undefined && t.database !== schema) {
    throw new DemoError(`--mysql names the database ${t.database} and --schema ${schema}: on MySQL the demo's tables go in a database of their own, so give one name`);
  }
  return t.database || schema || DEFAULT_DEMO_SCHEMA;
}

/** The upstream passwords as 0600 files beside the config (files, not the environment, so check-config works on it too). */
function writePasswordFiles(dir: string, protocol: Protocol, up: DemoUpstream): void {
  mkdirSync(join(dir, 'secrets'), { recursive: true, mode: 0o700 });
  for (const role of ['reader', 'writer'] as const) {
    const file = join(dir, passwordFile(protocol, role));
    rmSync(file, { force: true });
    writeFileSync(file, `${up[role].password || placeholderPassword()}\n`, { mode: 0o600 });
  }
}

/** The requested port if it is free, else 0 (any) with a notice: a second PostgreSQL or demo must not stop the demo. */
async function choosePort(port: number, what: string, notice: (m: string) => void): Promise<{ port: number; note?: string }> {
  if (port === 0) return { port: await anyFreePort(LOOPBACK) };
  if (await portFree(LOOPBACK, port)) return { port };
  notice(`${LOOPBACK}:${port} is already in use (another ${what} server, pgbouncer or demo?); the gateway listens on a free port instead`);
  return { port: await anyFreePort(LOOPBACK), note: `port ${port} is taken, so a free port was used; pass --${what === 'MySQL' ? 'mysql-port' : 'port'} to choose one` };
}

const hostPort = (hp: HostPort): string => `${hp.host}:${hp.port}`;

export async function startDemo(o: DemoOptions): Promise<RunningDemo> {
  checkPort(o.port);
  checkPort(o.mysqlPort);
  const target = (url: string | undefined, protocol: Protocol): ServerTarget | undefined => {
    if (url === undefined) return undefined;
    try {
      return parseServerUrl(url, protocol);
    } catch (err) {
      throw new DemoError((err as Error).message);
    }
  };
  const pgTarget = target(o.postgres, 'postgres');
  const myTarget = target(o.mysql, 'mysql');
  let pgSchema = DEFAULT_DEMO_SCHEMA;
  let mySchema = DEFAULT_DEMO_SCHEMA;
  try {
    if (o.schema !== undefined) pgSchema = checkSchemaName(o.schema);
    if (myTarget) mySchema = checkSchemaName(mysqlSchema(myTarget, o.schema));
  } catch (err) {
    throw err instanceof SeedError ? new DemoError(err.message) : err;
  }
  if (myTarget && !myTarget.password) throw new DemoError(mysqlAccountHelp(myTarget, mySchema));
  refuseSecondDemo();
  const dir = ensureDemoDir();

  const cleanups: (() => Promise<void> | void)[] = [];
  const stop = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch (err) {
        o.notice(`while stopping: ${(err as Error).message}`);
      }
    }
  };
  try {
    const clients = demoClients(dir);
    cleanups.push(() => { for (const c of clients) if (c.privateKeyFile) rmSync(c.privateKeyFile, { force: true }); });
    const issuer = await startDevIssuer({ audience: DEMO_AUDIENCE, clients, tokenLifetimeSec: 300, expiredTokenEndpoint: true });
    cleanups.push(() => issuer.stop());

    let postgres: DemoUpstream;
    const made: { postgres?: SeededSchema; mysql?: SeededSchema } = {};
    if (pgTarget) {
      made.postgres = await seeded(() => seedPostgres(pgTarget, pgSchema));
      postgres = upstreamFor(pgTarget);
    } else {
      o.notice('starting the embedded PostgreSQL (PGlite)...');
      const pg = await startEmbeddedPostgres();
      cleanups.push(() => pg.stop());
      postgres = { host: pg.host, port: pg.port, database: pg.database, tls: 'disable', reader: { user: DEMO_DB_USERS.reader, password: '' }, writer: { user: DEMO_DB_USERS.writer, password: '' } };
    }
    if (myTarget) made.mysql = await seeded(() => seedMysql(myTarget, mySchema));
    const mysql = myTarget ? upstreamFor(myTarget, mySchema) : undefined;
    cleanups.push(() => rmSync(join(dir, 'secrets'), { recursive: true, force: true }));
    writePasswordFiles(dir, 'postgres', postgres);
    if (mysql) writePasswordFiles(dir, 'mysql', mysql);

    const pgPort = await choosePort(o.port, 'PostgreSQL', o.notice);
    const myPort = mysql ? await choosePort(o.mysqlPort, 'MySQL', o.notice) : undefined;
    const configFile = join(dir, 'tokengate.yaml');
    const configFor = (pg: HostPort, my?: HostPort): string => demoConfigYaml({
      issuer: issuer.issuer, clients, listen: { postgres: pg, mysql: my }, upstreams: { postgres, mysql },
    });
    rmSync(configFile, { force: true });
    writeFileSync(configFile, configFor({ host: LOOPBACK, port: pgPort.port }, myPort && { host: LOOPBACK, port: myPort.port }), { mode: 0o600 });
    cleanups.push(() => rmSync(configFile, { force: true }));
    const gateway = await startGateway(loadConfig(configFile));
    cleanups.push(() => gateway.close());
    if (mysql && !gateway.mysql) throw new DemoError('this build of tokengate has no MySQL listener yet; run the demo without --mysql');
    // Keep the file true to what runs (the ports actually bound), for check-config and verify-token.
    writeFileSync(configFile, configFor(gateway.postgres!, gateway.mysql), { mode: 0o600 });

    const state: DemoState = {
      version: 1,
      pid: process.pid,
      startedAt: new Date().toISOString(),
      issuer: issuer.issuer,
      tokenEndpoint: issuer.tokenEndpoint,
      expiredTokenEndpoint: issuer.expiredTokenEndpoint!,
      audience: DEMO_AUDIENCE,
      clients: clients.map(({ clientId, clientSecret, privateKeyFile, keyId, groups, scopes, role }) => ({ clientId, clientSecret, privateKeyFile, keyId, groups, scopes, role })),
      postgres: hostPort(gateway.postgres!),
      mysql: mysql ? hostPort(gateway.mysql!) : undefined,
      database: DEMO_DATABASE_ALIAS,
      upstream: pgTarget ? pgTarget.display : 'embedded PGlite',
      mysqlUpstream: myTarget && (myTarget.database ? myTarget.display : `${myTarget.display}/${mySchema}`),
      configFile,
    };
    writeDemoState(state);
    cleanups.push(() => removeDemoState());
    const notes = [pgPort.note, myPort?.note].filter((n): n is string => n !== undefined);
    return { state, gateway, banner: demoBanner({ state, projectDir: projectDir(), embedded: !pgTarget, notes, made }), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
