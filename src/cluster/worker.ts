import { hostname } from 'node:os';
import { AggregatorRegistry } from 'prom-client';
import type { Gateway } from '../core/gateway';
import type { ReloadOutcome } from '../core/reload';
import { log } from '../log';
import { gatewayControls, listeningStatus } from './controls';
import { isToWorker, WORKER_ENV, type FromWorker } from './messages';

/** This process's worker slot (1..N) when the supervisor started it, else undefined. */
export function workerSlot(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const slot = Number(env[WORKER_ENV]);
  return process.send !== undefined && Number.isInteger(slot) && slot > 0 ? slot : undefined;
}

/** Every operational log line of this worker says which worker wrote it ("worker": N). */
export function labelWorkerLog(slot: number): void {
  log.defaultMeta = { worker: slot };
}

/** A worker's name among the processes sharing state: unique per process, and says where it runs. */
export function workerInstanceId(slot: number): string {
  return `${hostname()}/${process.pid}/w${slot}`;
}

function send(message: FromWorker): void {
  if (process.connected) process.send!(message);
}

/**
 * Runs a started gateway as one worker: the supervisor's messages do what the signals do in one
 * process. Signals sent to the whole process group (Ctrl-C on a terminal, systemd's default
 * KillMode=control-group) reach the workers as well: SIGTERM and SIGINT start the same drain
 * (once: ending it early is the supervisor's call, on a second signal to it), SIGHUP and SIGUSR2
 * reload and reopen this worker. A worker whose supervisor is gone drains and exits.
 */
export function serveAsWorker(gateway: Gateway): void {
  const reloads = reloadEveryWorker(gateway);
  const controls = gatewayControls(reloads.local, undefined);
  let stopping = false;
  const drain = (why: string): void => {
    if (stopping) return;
    stopping = true;
    controls.stop(why);
  };
  void gateway.keysFetched().then(() => send({ type: 'ready', listening: listeningStatus(gateway) }));
  const metrics = clusterMetrics(gateway);
  process.on('message', (m: unknown) => {
    if (!isToWorker(m)) return;
    if (m.type === 'metrics') metrics.answered(m);
    else if (m.type === 'reload-all-done') reloads.done(m.id);
    else if (m.type === 'reload') void controls.reload().then((ok) => send({ type: 'reloaded', ok }));
    else if (m.type === 'reopen-logs') controls.reopenLogs();
    else if (m.type === 'shutdown') drain('SIGTERM');
    else {
      drain('SIGTERM');
      controls.stop('SIGTERM'); // the second stop ends the remaining sessions now
    }
  });
  process.on('SIGTERM', () => drain('SIGTERM'));
  process.on('SIGINT', () => drain('SIGINT'));
  process.on('SIGHUP', () => void controls.reload());
  process.on('SIGUSR2', () => controls.reopenLogs());
  process.on('disconnect', () => {
    if (stopping) return;
    log.error('the supervising tokengate process is gone: draining this worker and exiting');
    drain('the supervisor\'s exit');
  });
}

/** How long a scrape waits for the supervisor to gather every worker's metrics. */
const METRICS_WAIT_MS = 5_000;

/**
 * GET /metrics reaches one worker (they share the admin listener): it asks the supervisor, which
 * gathers and sums every worker's registry (prom-client's AggregatorRegistry), so one scrape
 * target sees the whole gateway and counters never go back between scrapes.
 */
function clusterMetrics(gateway: Gateway): { answered(m: { id: number; text?: string; error?: string }): void } {
  const waiting = new Map<number, { resolve(text: string): void; reject(err: Error): void }>();
  let next = 0;
  if (gateway.metrics) {
    // Constructing one makes prom-client answer the supervisor's requests for this registry.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([gateway.metrics.registry]);
    gateway.metrics.renderWith(() => new Promise<string>((resolve, reject) => {
      const id = ++next;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`the supervisor did not gather the workers' metrics within ${METRICS_WAIT_MS / 1000}s`));
      }, METRICS_WAIT_MS);
      waiting.set(id, {
        resolve: (text) => { clearTimeout(timer); resolve(text); },
        reject: (err) => { clearTimeout(timer); reject(err); },
      });
      send({ type: 'metrics-request', id });
    }));
  }
  return {
    answered(m) {
      const w = waiting.get(m.id);
      if (!w) return;
      waiting.delete(m.id);
      if (m.text !== undefined) w.resolve(m.text);
      else w.reject(new Error(`the workers' metrics could not be gathered: ${m.error ?? 'no answer'}`));
    },
  };
}

/** How long POST /reload waits for the supervisor to reload every worker. */
const RELOAD_ALL_WAIT_MS = 60_000;

/**
 * POST /reload reaches one worker, but the config must change in all of them: this worker asks
 * the supervisor to reload every worker (as SIGHUP does) and answers with its own outcome of that
 * round (all workers read the same file). `local` is the gateway as the supervisor's messages and
 * signals see it, reloading this worker only.
 */
function reloadEveryWorker(gateway: Gateway): { local: Gateway; done(id: number): void } {
  const ownReload = gateway.reload;
  let last: ReloadOutcome | undefined;
  const local: Gateway = { ...gateway, reload: async () => (last = await ownReload.call(gateway)) };
  const waiting = new Map<number, () => void>();
  let next = 0;
  gateway.reload = () => new Promise<ReloadOutcome>((resolve) => {
    const id = ++next;
    const finish = (outcome: ReloadOutcome): void => {
      clearTimeout(timer);
      waiting.delete(id);
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ ok: false, problems: [{ path: '', message: `the workers did not finish reloading within ${RELOAD_ALL_WAIT_MS / 1000}s; see the operational log` }] }),
      RELOAD_ALL_WAIT_MS);
    last = undefined;
    waiting.set(id, () => finish(last ?? { ok: false, problems: [{ path: '', message: 'this worker did not take part in the reload (it was starting); see the operational log' }] }));
    send({ type: 'reload-all', id });
  });
  return { local, done: (id) => waiting.get(id)?.() };
}
