/**
 * fetch() with a timeout, no redirects and a cap on the body size, for talking to the IdP.
 * A misbehaving or hostile endpoint cannot hang us or make us buffer an unbounded body.
 */

export const MAX_IDP_RESPONSE_BYTES = 1024 * 1024;

export class FetchBodyTooLargeError extends Error {
  constructor(url: string, limit: number) {
    super(`the response from ${url} is larger than ${limit} bytes; an OIDC discovery document or JWKS is normally a few KiB`);
    this.name = 'FetchBodyTooLargeError';
  }
}

/** Reads the body of `res` into memory, failing once more than `limit` bytes arrive. */
export async function readBodyBounded(res: Response, url: string, limit = MAX_IDP_RESPONSE_BYTES): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw new FetchBodyTooLargeError(url, limit);
  }
  if (!res.body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw new FetchBodyTooLargeError(url, limit);
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks, total);
}

/**
 * A drop-in `fetch` for jose's `customFetch` option: same semantics, but the body is read
 * with a size cap before jose parses it.
 */
export async function boundedFetch(url: string, init: RequestInit): Promise<Response> {
  const res = await fetch(url, { ...init, redirect: 'manual' });
  const body = await readBodyBounded(res, url);
  return new Response(res.status === 204 || res.status === 304 ? null : body, { status: res.status, headers: res.headers });
}

/** GET a JSON document: { status, json } where json is undefined when the body is not JSON. */
export async function fetchJson(url: string, timeoutMs: number): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, {
    method: 'GET',
    redirect: 'manual',
    headers: { accept: 'application/json' },
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = await readBodyBounded(res, url);
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    json = undefined;
  }
  return { status: res.status, json };
}
