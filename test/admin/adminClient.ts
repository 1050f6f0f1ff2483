import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import type { Gateway } from '../../src/core/gateway';
import { log } from '../../src/log';

/** Calls to a test gateway's admin API, and the files an admin config needs. */

export interface AdminReply {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed JSON, or undefined when the answer is not JSON. */
  body: any;
}

export async function call(g: Gateway, method: string, path: string, o: { bearer?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {}): Promise<AdminReply> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.bearer !== undefined) headers.Authorization = `Bearer ${o.bearer}`;
  const body = o.rawBody ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`http://127.0.0.1:${g.admin!.port}${path}`, { method, headers, body });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

/** A temp dir with an admin token file and a state dir; `yaml` is the admin and state sections. */
export function adminFiles(match = '{ groups: [db-admins] }'): { dir: string; token: string; stateDir: string; yaml: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'tokengate-admin-'));
  const token = `admin-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  writeFileSync(join(dir, 'admin-token'), `${token}\n`, { mode: 0o600 });
  const stateDir = join(dir, 'state');
  const yaml = `admin:\n  tokenFile: ${join(dir, 'admin-token')}\n${match ? `  match: ${match}\n` : ''}state:\n  dir: ${stateDir}\n`;
  return { dir, token, stateDir, yaml, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Everything the operational log writes while the test runs. */
export function captureLog(): { text(): string; stop(): void } {
  let out = '';
  const transport = new winston.transports.Stream({ stream: new Writable({ write(chunk, _enc, cb) { out += String(chunk); cb(); } }) });
  log.add(transport);
  return { text: () => out, stop: () => log.remove(transport) };
}
