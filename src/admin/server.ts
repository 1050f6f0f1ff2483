import http from 'node:http';
import type { AuditLog } from '../audit/auditLog';
import type { IdentityFields } from '../audit/events';
import type { Config, HostPort, Protocol } from '../config/schema';
import type { Clock } from '../core/clock';
import type { ReloadOutcome } from '../core/reload';
import type { SessionFilter } from '../core/sessionRegistry';
import type { NewRevocation, Revocation, RevocationStore } from '../core/state/revocations';
import { log } from '../log';
import { formatRemote } from '../net/address';
import { UNAUTHORIZED, type AdminAuth } from './auth';
import type { Readiness } from './readiness';
import { describeTarget, parseRevocationRequest } from './revocationRequest';
import type { SessionDirectory } from './sessionDirectory';
import { revocationView } from './views';

/**
 * The admin API on listen.admin: JSON over HTTP. /healthz and /readyz are open (and /metrics
 * unless admin.metricsRequireAuth); everything else needs the admin bearer (AdminAuth), and
 * every such call is audited with its caller (admin_request). Request bodies are bounded and
 * slow clients are cut off, so the endpoint cannot be used to tie up the gateway.
 */

/** Prometheus text for GET /metrics (the gateway's metrics registry). */
export interface MetricsProvider {
  contentType: string;
  render(): Promise<string>;
}

export interface AdminDeps {
  config: () => Config;
  /** This instance's sessions, or every instance's with shared state. */
  sessions: SessionDirectory;
  revocations: RevocationStore;
  readiness: Readiness;
  auth: AdminAuth;
  audit: AuditLog;
  clock: Clock;
  /** Records a revocation; the live sessions it refuses are ended (sessionsEnded counts them). */
  revoke(input: NewRevocation): { revocation: Revocation; sessionsEnded: number };
  reload(): Promise<ReloadOutcome>;
  /** Looked up per request: parts of the gateway may provide them after it started. */
  metrics(): MetricsProvider | undefined;
  /** Reopens the audit file (after log rotation). */
  reopenLogs(): Promise<void>;
}

export const MAX_BODY_BYTES = 64 * 1024;
/** The whole request head must arrive within this, and the whole request within REQUEST_TIMEOUT_MS. */
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 30_000;
const KILL_MESSAGE = 'an operator ended this session through the tokengate admin API; reconnect if you still need the database';

interface Call {
  req: http.IncomingMessage;
  url: URL;
  /** The path's {id}, decoded. */
  id: string;
  caller: string;
}

interface Reply {
  status: number;
  /** JSON, or text with its content type (metrics, healthz). */
  body: unknown;
  contentType?: string;
  headers?: Record<string, string>;
  /** What the call did, for the audit record. */
  action?: string;
}

type Handler = (call: Call) => Reply | Promise<Reply>;

interface Route {
  path: RegExp;
  /** Open endpoints need no bearer and are not audited. */
  open?: (config: Config) => boolean;
  methods: Record<string, Handler>;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const json = (status: number, body: unknown, action?: string): Reply => ({ status, body, action });
const error = (status: number, message: string): Reply => json(status, { error: message });

export class AdminServer {
  readonly #server: http.Server;
  readonly #routes: Route[];

  constructor(private readonly address: HostPort, private readonly deps: AdminDeps) {
    this.#routes = this.#table();
    this.#server = http.createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, maxHeaderSize: 16 * 1024 }, (req, res) => {
      this.#handle(req, res).catch((err: Error) => {
        log.error(`admin API: ${req.method} ${pathOf(req)} failed: ${err.stack ?? err.message}`);
        if (!res.headersSent) send(res, error(500, 'internal error; the operational log has the cause'));
        else res.destroy();
      });
    });
  }

  listen(): Promise<HostPort> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.address.port, this.address.host, () => {
        this.#server.removeListener('error', reject);
        const a = this.#server.address() as { address: string; port: number };
        log.info(`admin API on http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`);
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /** Stops accepting and closes every connection, idle keep-alive ones included. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const method = req.method ?? 'GET';
    const match = this.#routes.map((route) => ({ route, m: route.path.exec(url.pathname) })).find((r) => r.m);
    const config = this.deps.config();
    if (match?.route.open?.(config)) {
      send(res, await this.#dispatch(match.route, method, { req, url, caller: '' }));
      return;
    }
    const remote = formatRemote(req.socket);
    const auth = await this.deps.auth.authenticate(req.headers.authorization);
    let reply: Reply;
    let caller: string | undefined;
    let identity: Readonly<IdentityFields> | undefined;
    if (!auth.ok) {
      reply = error(auth.status, auth.error);
      if (auth.status === 401) reply.headers = { 'WWW-Authenticate': 'Bearer realm="tokengate"' };
      ({ caller, identity } = auth);
    } else {
      ({ caller, identity } = auth);
      reply = match ? await this.#dispatch(match.route, method, { req, url, caller }, match.m![1]) : error(404, `no such endpoint: ${url.pathname}`);
    }
    send(res, reply);
    // A successful scrape is not worth an audit line every 15 s; refusals are.
    if (match?.route.path === METRICS && reply.status === 200) return;
    const sent = reply.status >= 400 ? (reply.body as { error?: string }).error : undefined;
    this.deps.audit.write({
      event: 'admin_request', method, path: auditPath(url), remote, status: reply.status, caller, action: reply.action,
      error: sent === UNAUTHORIZED ? undefined : sent, ...identity,
    });
  }

  async #dispatch(route: Route, method: string, base: Omit<Call, 'id'>, rawId?: string): Promise<Reply> {
    const handler = route.methods[method] ?? (method === 'HEAD' ? route.methods.GET : undefined);
    if (!handler) {
      const allowed = Object.keys(route.methods).join(', ');
      return { ...error(405, `${method} is not allowed here; use ${allowed}`), headers: { Allow: allowed } };
    }
    try {
      return await handler({ ...base, id: rawId === undefined ? '' : decodeId(rawId) });
    } catch (err) {
      if (err instanceof HttpError) return error(err.status, err.message);
      throw err;
    }
  }

  #table(): Route[] {
    const d = this.deps;
    const always = (): boolean => true;
    return [
      { path: /^\/healthz$/, open: always, methods: { GET: () => ({ status: 200, body: 'ok\n', contentType: 'text/plain; charset=utf-8' }) } },
      {
        path: /^\/readyz$/, open: always,
        methods: { GET: async () => { const r = await d.readiness.report(); return json(r.ready ? 200 : 503, r); } },
      },
      {
        path: METRICS, open: (c) => !c.admin.metricsRequireAuth,
        methods: {
          GET: async () => {
            const metrics = d.metrics();
            if (!metrics) return error(404, 'this gateway has no metrics');
            return { status: 200, body: await metrics.render(), contentType: metrics.contentType };
          },
        },
      },
      {
        path: /^\/sessions$/,
        methods: {
          GET: async ({ url }) => {
            const { sessions, unanswered } = await d.sessions.list(sessionFilter(url));
            return json(200, unanswered.length ? { sessions, unanswered } : { sessions });
          },
        },
      },
      {
        path: /^\/sessions\/([^/]+)$/,
        methods: {
          GET: async ({ id }) => {
            const s = await d.sessions.get(id);
            return s ? json(200, s) : error(404, `no live session ${id}`);
          },
          DELETE: async ({ id, caller }) => {
            if (!(await d.sessions.kill(id, KILL_MESSAGE, caller))) return error(404, `no live session ${id}`);
            return json(200, { id, ended: true }, `killed ${id}`);
          },
        },
      },
      {
        path: /^\/revocations$/,
        methods: {
          GET: () => json(200, { revocations: d.revocations.list(d.clock.now()).map(revocationView) }),
          POST: async ({ req, caller }) => {
            const parsed = parseRevocationRequest(await readJson(req), d.clock.now());
            if (!parsed.ok) return error(400, parsed.error);
            const { revocation: r, sessionsEnded } = d.revoke({ ...parsed.value, by: caller });
            const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());
            return json(201, { id: r.id, createdAt: iso(r.createdAt), expiresAt: iso(r.expiresAt), sessionsEnded },
              `revoked ${describeTarget(r.target)} as ${r.id}${r.until !== undefined ? ` until ${iso(r.until)}` : ''}; ${sessionsEnded} session(s) ended`);
          },
        },
      },
      {
        path: /^\/revocations\/([^/]+)$/,
        methods: {
          DELETE: ({ id }) => {
            const r = d.revocations.remove(id);
            return r ? json(200, { id, removed: true }, `removed revocation ${id} (${describeTarget(r.target)})`) : error(404, `no revocation ${id}`);
          },
        },
      },
      {
        path: /^\/reload$/,
        methods: {
          POST: async () => {
            const o = await d.reload();
            if (o.ok) return json(200, { ok: true, changed: o.changed }, `reloaded: ${o.changed.length ? `changed ${o.changed.join(', ')}` : 'nothing changed'}`);
            return { ...json(400, { ok: false, error: 'the config has problems; the running config is kept', problems: o.problems }), action: `reload refused (${o.problems.length} problem(s))` };
          },
        },
      },
      {
        path: /^\/reopen-logs$/,
        methods: {
          POST: async () => {
            await d.reopenLogs();
            return json(200, { reopened: true }, 'reopened logs');
          },
        },
      },
    ];
  }
}

const METRICS = /^\/metrics$/;
const FILTERS = new Set(['sub', 'client', 'grant', 'protocol']);

function sessionFilter(url: URL): SessionFilter {
  const filter: SessionFilter = {};
  for (const key of new Set(url.searchParams.keys())) {
    if (!FILTERS.has(key)) throw new HttpError(400, `unknown filter "${key}"; filter sessions by sub, client, grant or protocol`);
    const values = url.searchParams.getAll(key);
    if (values.length > 1 || values[0] === '') throw new HttpError(400, `give "${key}" exactly one non-empty value`);
    if (key === 'protocol' && values[0] !== 'postgres' && values[0] !== 'mysql') throw new HttpError(400, 'protocol is postgres or mysql');
    if (key === 'protocol') filter.protocol = values[0] as Protocol;
    else filter[key as 'sub' | 'client' | 'grant'] = values[0];
  }
  return filter;
}

/** The path and the session filters; other query parameters' values are not recorded (one could be a token pasted there). */
function auditPath(url: URL): string {
  if (url.search === '') return url.pathname;
  const shown = new URLSearchParams();
  for (const [key, value] of url.searchParams) shown.append(key, FILTERS.has(key) ? value : '(not shown)');
  return `${url.pathname}?${shown.toString()}`;
}

function decodeId(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, 'the id in the path is not valid percent-encoding');
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw tooLarge(req);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw tooLarge(req);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new HttpError(400, 'expected a JSON body');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, 'the body is not valid JSON');
  }
}

function tooLarge(req: http.IncomingMessage): HttpError {
  // Stop reading: the rest of the body is not wanted, and the connection is closed after the answer.
  req.pause();
  return new HttpError(413, `the body is larger than ${MAX_BODY_BYTES} bytes`);
}

function pathOf(req: http.IncomingMessage): string {
  return (req.url ?? '/').split('?')[0];
}

function send(res: http.ServerResponse, reply: Reply): void {
  const text = reply.contentType ? String(reply.body) : JSON.stringify(reply.body) + '\n';
  res.writeHead(reply.status, {
    'Content-Type': reply.contentType ?? 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...(reply.status === 413 ? { Connection: 'close' } : {}),
    ...reply.headers,
  });
  res.end(text);
}
