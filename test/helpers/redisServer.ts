import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A throwaway redis-server on a free loopback port (no persistence), stopped by its PID. It can
 * be stopped and started again on the same port (Redis going away and coming back). The
 * machine's own Redis (6379) is never touched.
 */
export interface RedisServer {
  port: number;
  url: string;
  /** Stops the server (SIGKILL: no chance to say goodbye, as a crashed or partitioned Redis). */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: nothing was persisted). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
});

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Starts `redis-server` with `args` on `port`; resolves once it accepts connections. */
/** `probePort` is where readiness is checked (a TLS-only server has `port` 0 and listens on its --tls-port). */
export async function spawnRedis(port: number, args: string[] = [], dir = mkdtempSync(join(tmpdir(), 'tg-redis-')), probePort = port): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 10_000;
  while (!(await accepts(probePort))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server on ${port} did not start: ${output.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return child;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    process.kill(child.pid!, 'SIGKILL');
  });
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tg-redis-'));
  writeFileSync(join(dir, '.keep'), '');
  let child = await spawnRedis(port, [], dir);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill: () => killChild(child),
    async restart() {
      await killChild(child);
      child = await spawnRedis(port, [], dir);
    },
    async stop() {
      await killChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
