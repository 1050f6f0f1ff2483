/**
 * What the supervising process and its workers say to each other over the cluster's IPC channel.
 * Signals reach the supervisor (systemd signals the main PID); it passes them on as these messages.
 */

/** Supervisor -> worker. */
export type ToWorker =
  | { type: 'reload' }
  | { type: 'reopen-logs' }
  /** Drain like SIGTERM does in a single process. */
  | { type: 'shutdown' }
  /** A second SIGTERM or SIGINT: end the remaining sessions now. */
  | { type: 'shutdown-now' }
  /** The answer to a metrics request: every worker's metrics, aggregated (or why not). */
  | { type: 'metrics'; id: number; text?: string; error?: string }
  /** Every worker has answered the reload a POST /reload asked for. */
  | { type: 'reload-all-done'; id: number };

/** Worker -> supervisor. */
export type FromWorker =
  /** Listening, and the issuer's keys fetched (or their fetch failed), as READY=1 means in one process. */
  | { type: 'ready'; listening: string }
  /** A reload (SIGHUP) is over: applied, or refused with the running config kept. */
  | { type: 'reloaded'; ok: boolean }
  /** GET /metrics reached this worker: the supervisor gathers every worker's registry. */
  | { type: 'metrics-request'; id: number }
  /** POST /reload reached this worker: the supervisor reloads every worker, as on SIGHUP. */
  | { type: 'reload-all'; id: number };

/** The environment variable that tells a worker its slot (1..N); set by the supervisor. */
export const WORKER_ENV = 'TOKENGATE_WORKER';

export function isToWorker(m: unknown): m is ToWorker {
  return typeof m === 'object' && m !== null && ['reload', 'reopen-logs', 'shutdown', 'shutdown-now', 'metrics', 'reload-all-done'].includes((m as { type?: string }).type ?? '');
}

export function isFromWorker(m: unknown): m is FromWorker {
  return typeof m === 'object' && m !== null && ['ready', 'reloaded', 'metrics-request', 'reload-all'].includes((m as { type?: string }).type ?? '');
}
