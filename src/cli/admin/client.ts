import { formatDuration } from '../../config/duration';
import type { AdminTarget } from './target';
import { AdminRefusedError, AdminUnreachableError } from './errors';
import { cell } from './format';

/** One HTTP exchange with the admin API (Node's fetch). The bearer goes only into the header. */

export interface AdminResponse {
  status: number;
  /** The parsed JSON body, or undefined when the body is not JSON. */
  body: unknown;
  /** The raw body text. */
  text: string;
}

export interface AdminRequest {
  method: 'GET' | 'POST' | 'DELETE';
  /** Path under the base URL, e.g. /sessions; segments must already be encoded. */
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
}

/** A short, safe description of why fetch failed (the cause's code, not a stack). */
function describeFailure(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${formatDuration(timeoutMs)} (--timeout)`;
  const cause = e?.cause?.code ?? e?.cause?.message;
  return cause ? `${e?.message ?? 'fetch failed'} (${cause})` : (e?.message ?? String(err));
}

export class AdminClient {
  constructor(readonly target: AdminTarget, readonly timeoutMs: number) {}

  url(path: string, query?: Record<string, string | undefined>): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, v);
    const qs = params.toString();
    return `${this.target.url}${path}${qs ? `?${qs}` : ''}`;
  }

  /** Sends the request; throws AdminUnreachableError when there is no HTTP answer. Any status is returned. */
  async send(req: AdminRequest): Promise<AdminResponse> {
    const url = this.url(req.path, req.query);
    const headers: Record<string, string> = { authorization: `Bearer ${this.target.token}`, accept: 'application/json' };
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    let status: number;
    let text: string;
    try {
      const res = await fetch(url, {
        method: req.method,
        headers,
        body: req.body === undefined ? undefined : JSON.stringify(req.body),
        // A redirect could carry the request elsewhere; the admin API never redirects.
        redirect: 'error',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      status = res.status;
      text = await res.text();
    } catch (err) {
      throw new AdminUnreachableError(`cannot reach the admin API at ${this.target.url}: ${describeFailure(err, this.timeoutMs)}; check that tokengate is running with listen.admin set and the address (--admin, TOKENGATE_ADMIN_URL or listen.admin)`);
    }
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status, body, text };
  }

  /** Sends the request and returns the body of a 2xx answer; any other status throws AdminRefusedError with the server's message. */
  async call(req: AdminRequest): Promise<unknown> {
    const res = await this.send(req);
    if (res.status >= 200 && res.status < 300) return res.body;
    throw this.refused(req, res);
  }

  refused(req: AdminRequest, res: AdminResponse): AdminRefusedError {
    const fromServer = serverMessage(res);
    const hint = res.status === 401
      ? ` (the bearer from ${this.target.tokenSource} was not accepted: check that it is the content of the gateway's admin.tokenFile, or an access token matching admin.match)`
      : '';
    return new AdminRefusedError(`${req.method} ${req.path}: HTTP ${res.status}: ${fromServer}${hint}`, res.status, res.body);
  }
}

/** The server's `{"error": "..."}`, or a bounded excerpt of a body that is not that. */
export function serverMessage(res: AdminResponse): string {
  const b = res.body as { error?: unknown } | undefined;
  // Control characters could drive the operator's terminal: whatever answered, print none.
  if (b && typeof b === 'object' && typeof b.error === 'string') return cell(b.error);
  if (res.text.trim() === '') return '(no message)';
  const text = cell(res.text).trim().replace(/\s+/g, ' ');
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}
