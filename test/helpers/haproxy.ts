/**
 * A throwaway HAProxy (Debian's /usr/sbin/haproxy) in the foreground on a generated config,
 * stopped by its PID. `ports` are free ports picked for the config's frontends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './waitFor';

export const HAPROXY = '/usr/sbin/haproxy';

export interface HaproxyProcess {
  stop(): Promise<void>;
  output(): string;
}

/** A port nobody listens on right now (HAProxy binds it a moment later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts HAProxy on `config` and waits until each of `ports` accepts connections. */
export async function startHaproxy(config: string, ports: number[]): Promise<HaproxyProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'tokengate-haproxy-'));
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  const child: ChildProcess = spawn(HAPROXY, ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      await waitFor(async () => child.exitCode !== null || (await accepting(port)), { what: `HAProxy to listen on ${port}`, timeoutMs: 15_000, detail: () => output });
    }
    if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}): ${output}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { stop, output: () => output };
}
