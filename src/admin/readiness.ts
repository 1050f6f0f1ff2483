import net from 'node:net';

/**
 * GET /readyz: whether this gateway can serve agents. Each part of the gateway that can make it
 * unready registers a named check (the listeners, the issuer's keys, each upstream; others add
 * theirs with `add`). The report is cached briefly so that a load balancer or systemd polling
 * /readyz does not open a TCP connection to every database on every poll.
 */

export interface CheckResult {
  ok: boolean;
  /** Why not (or what was checked), for the operator reading /readyz. */
  detail?: string;
}

/** A check runs quickly or bounds its own wait (a timeout from the config); a throw counts as failed. */
export type ReadinessCheck = () => CheckResult | Promise<CheckResult>;

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, CheckResult>;
}

/** How long a report is reused. */
export const READINESS_CACHE_MS = 1000;

export class Readiness {
  readonly #checks = new Map<string, ReadinessCheck>();
  #cached?: { at: number; report: Promise<ReadinessReport> };

  constructor(private readonly cacheMs = READINESS_CACHE_MS) {}

  /** Adds (or replaces) the check called `name`. */
  add(name: string, check: ReadinessCheck): void {
    this.#checks.set(name, check);
    this.#cached = undefined;
  }

  remove(name: string): void {
    if (this.#checks.delete(name)) this.#cached = undefined;
  }

  names(): string[] {
    return [...this.#checks.keys()];
  }

  /** Every check's result; ready when all pass. Concurrent callers within the cache time share one run. */
  report(): Promise<ReadinessReport> {
    // Wall time, not the gateway's clock: a test's manual clock would keep a report forever.
    const now = performance.now();
    if (this.#cached && now - this.#cached.at < this.cacheMs) return this.#cached.report;
    const report = this.#run();
    this.#cached = { at: now, report };
    return report;
  }

  async #run(): Promise<ReadinessReport> {
    const entries = await Promise.all([...this.#checks].map(async ([name, check]): Promise<[string, CheckResult]> => {
      try {
        return [name, await check()];
      } catch (err) {
        return [name, { ok: false, detail: (err as Error).message }];
      }
    }));
    return { ready: entries.every(([, r]) => r.ok), checks: Object.fromEntries(entries) };
  }
}

/** Whether a TCP connection to host:port opens within `timeoutMs` (it is closed at once). */
export function tcpProbe(host: string, port: number, timeoutMs: number, timeoutSetting: string): Promise<CheckResult> {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (result: CheckResult): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done({ ok: false, detail: `no TCP connection to ${where} within ${timeoutMs} ms (${timeoutSetting})` }), timeoutMs);
    timer.unref();
    socket.once('connect', () => done({ ok: true, detail: `TCP connection to ${where}` }));
    socket.once('error', (err: NodeJS.ErrnoException) => done({ ok: false, detail: `cannot connect to ${where}: ${err.code ?? err.message}` }));
  });
}
