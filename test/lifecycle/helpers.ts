/**
 * A gateway process as systemd runs it: the real bin/tokengate.js with NOTIFY_SOCKET pointing at
 * an AF_UNIX datagram socket that Debian's /usr/bin/python3 binds (Node.js cannot), its output
 * and the notify messages collected for the test to wait on.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join, resolve } from 'node:path';
import { waitFor } from '../helpers/waitFor';

export const ROOT = resolve(__dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'tokengate.js');

/** Prints each datagram received on the socket at argv[1] as one JSON string per line. */
const LISTENER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("bound"), flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

export interface NotifySocket {
  path: string;
  /** Every datagram so far, in order. */
  messages(): string[];
  /** Resolves once a message containing `line` arrives after the first `after` messages; returns its index. */
  waitFor(line: string, after?: number, timeoutMs?: number): Promise<number>;
  stop(): void;
}

export async function listenForNotify(path: string): Promise<NotifySocket> {
  const child = spawn('/usr/bin/python3', ['-c', LISTENER, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const messages: string[] = [];
  let buffered = '';
  let bound = false;
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.on('data', (d: Buffer) => {
    buffered += d.toString();
    for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
      const m = JSON.parse(buffered.slice(0, i)) as string;
      buffered = buffered.slice(i + 1);
      if (m === 'bound' && !bound) bound = true;
      else messages.push(m);
    }
  });
  await waitFor(() => bound || child.exitCode !== null, { what: 'python3 to bind the notify socket', timeoutMs: 10_000, detail: () => stderr });
  if (!bound) throw new Error(`the notify listener failed: ${stderr}`);
  const found = (line: string, after: number): number => messages.findIndex((m, i) => i >= after && m.split('\n').includes(line));
  return {
    path,
    messages: () => [...messages],
    waitFor: (line, after = 0, timeoutMs = 15_000) =>
      waitFor(() => (found(line, after) >= 0 ? found(line, after) + 1 : 0), { what: `${line} on the notify socket`, timeoutMs, detail: () => JSON.stringify(messages) })
        .then((n) => n - 1),
    stop: () => void child.kill('SIGTERM'),
  };
}

export interface GatewayProcess {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The PostgreSQL listener's port, from the operational log. */
  port(): Promise<number>;
  signal(sig: NodeJS.Signals): void;
}

export function startGatewayProcess(config: string, env: Record<string, string>): GatewayProcess {
  const child = spawn(process.execPath, [BIN, 'start', '-c', config], { cwd: ROOT, env: { ...process.env, TOKENGATE_LOG_LEVEL: 'info', ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('close', (code, signal) => res({ code, signal })));
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    async port() {
      const m = await waitFor(() => /postgres listener on 127\.0\.0\.1:(\d+)/.exec(stderr) ?? (child.exitCode !== null && 'exited'), {
        what: 'the gateway to report its listener', timeoutMs: 60_000, intervalMs: 50, detail: () => stderr,
      });
      if (m === 'exited') throw new Error(`the gateway exited: ${stderr}`);
      return Number(m[1]);
    },
    signal: (sig) => void process.kill(child.pid!, sig),
  };
}

/** The operational log's JSON lines (stderr is not a terminal). */
export function logLines(stderr: string): Array<{ level: string; message: string; timestamp: string }> {
  return stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: string; message: string; timestamp: string });
}
