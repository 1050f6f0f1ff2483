import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { log } from '../log';
import type { ServiceNotifier } from '../systemd/notify';
import { isFromWorker, WORKER_ENV, type ToWorker } from './messages';

/**
 * The supervising process of `workers: N`: it serves no connections itself. N workers (this
 * program again, started by node:cluster) share the listeners: the supervisor holds the listening
 * sockets and hands each new connection to a worker in turn. It restarts a worker that exits
 * unasked (with backoff), passes SIGHUP, SIGUSR2, SIGTERM and SIGINT on to every worker, tells
 * systemd READY=1 once all are ready, and exits 0 once all have drained after SIGTERM.
 */

/** The first restart waits this long; each crash in a row doubles it, up to RESTART_MAX_MS. */
const RESTART_BASE_MS = 500;
const RESTART_MAX_MS = 30_000;
/** A worker that ran this long before it crashed starts over from RESTART_BASE_MS. */
const STABLE_MS = 60_000;
/** How long the supervisor waits for each worker's answer to a reload before it reports it missing. */
const RELOAD_WAIT_MS = 60_000;
/** The exit code of a worker that could not start because of its settings (exitWithSettingsError). */
const SETTINGS_EXIT = 2;

interface Slot {
  index: number;
  worker?: Worker;
  startedAt: number;
  ready: boolean;
  /** Crashes in a row (reset once a worker of this slot ran STABLE_MS). */
  crashes: number;
  restart?: NodeJS.Timeout;
  /** Exited after being asked to stop, and with which code. */
  exitCode?: number;
}

export function superviseWorkers(count: number, notifier: ServiceNotifier | undefined): void {
  const slots: Slot[] = Array.from({ length: count }, (_, i) => ({ index: i + 1, startedAt: 0, ready: false, crashes: 0 }));
  let announced = false;
  let stopping = false;
  let reloads: Array<{ slot: Slot; done: (ok: boolean | undefined) => void }> = [];
  // GET /metrics answered by any worker covers all of them: one scrape target per gateway.
  const aggregator = new AggregatorRegistry();

  const fork = (slot: Slot): void => {
    // Only the supervisor talks to systemd: a worker that inherited NOTIFY_SOCKET would say READY=1 for all.
    const worker = cluster.fork({ [WORKER_ENV]: String(slot.index), NOTIFY_SOCKET: '', WATCHDOG_USEC: '', WATCHDOG_PID: '' });
    slot.worker = worker;
    slot.ready = false;
    slot.startedAt = Date.now();
    log.info(`worker ${slot.index} started (pid ${worker.process.pid})`);
    worker.on('message', (m: unknown) => {
      if (!isFromWorker(m)) return;
      if (m.type === 'ready') {
        slot.ready = true;
        log.info(`worker ${slot.index} (pid ${worker.process.pid}) ready: ${m.listening}`);
        // A stop that came while it was starting found no one listening for it.
        if (stopping) worker.send({ type: 'shutdown' } satisfies ToWorker);
        if (!announced && slots.every((s) => s.ready)) {
          announced = true;
          log.info(`all ${count} workers ready`);
          void notifier?.ready(`${count} workers; listening: ${m.listening}`);
        }
      } else if (m.type === 'reload-all') {
        void reload(`POST /reload on worker ${slot.index}`).then(() => worker.send({ type: 'reload-all-done', id: m.id } satisfies ToWorker));
      } else if (m.type === 'metrics-request') {
        // prom-client asks every worker for its registry over the same channel and sums them.
        aggregator.clusterMetrics().then(
          (text) => worker.send({ type: 'metrics', id: m.id, text } satisfies ToWorker),
          (err: Error) => worker.send({ type: 'metrics', id: m.id, error: err.message } satisfies ToWorker));
      } else {
        const waiting = reloads.find((r) => r.slot === slot);
        waiting?.done(m.ok);
      }
    });
    worker.on('exit', (code, signal) => exited(slot, worker, code, signal));
  };

  const exited = (slot: Slot, worker: Worker, code: number | null, signal: string | null): void => {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    for (const r of reloads.filter((x) => x.slot === slot)) r.done(undefined);
    if (stopping) {
      slot.exitCode = signal ? 1 : code ?? 1;
      log.info(`worker ${slot.index} (pid ${worker.process.pid}) ${how}`);
      if (slots.every((s) => s.worker === undefined)) finish();
      return;
    }
    if (!announced && code === SETTINGS_EXIT) {
      // It could not start with these settings (it said why): the others cannot either.
      log.error(`worker ${slot.index} (pid ${worker.process.pid}) could not start; stopping tokengate`);
      stopAll('a worker could not start', SETTINGS_EXIT);
      return;
    }
    if (Date.now() - slot.startedAt >= STABLE_MS) slot.crashes = 0;
    const delay = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** slot.crashes);
    slot.crashes++;
    log.error(`worker ${slot.index} (pid ${worker.process.pid}) ${how} unasked; its sessions are gone; restarting it in ${delay / 1000}s` +
      (slot.crashes > 1 ? ` (crash ${slot.crashes} in a row: see its last log lines above)` : ''));
    slot.restart = setTimeout(() => {
      slot.restart = undefined;
      if (!stopping) fork(slot);
    }, delay);
  };

  let exitCode = 0;
  const finish = (): void => {
    notifier?.close();
    const failed = slots.filter((s) => s.exitCode !== undefined && s.exitCode !== 0);
    if (failed.length) log.error(`worker(s) ${failed.map((s) => s.index).join(', ')} did not stop cleanly`);
    log.info('tokengate stopped');
    process.exit(exitCode || (failed.length ? 1 : 0));
  };

  const tell = (message: ToWorker): void => {
    for (const s of slots) if (s.worker?.isConnected()) s.worker.send(message);
  };

  const stopAll = (why: string, code = 0): void => {
    stopping = true;
    exitCode = code;
    for (const s of slots) clearTimeout(s.restart);
    log.info(`${why}: every worker stops taking connections and drains its sessions`);
    void notifier?.stopping('draining sessions');
    tell({ type: 'shutdown' });
    if (slots.every((s) => s.worker === undefined)) finish();
  };

  const onStopSignal = (signal: string): void => {
    if (stopping) {
      log.warn(`${signal} received again: the workers end their remaining sessions now`);
      tell({ type: 'shutdown-now' });
      return;
    }
    stopAll(`${signal} received`);
  };

  let reloading = Promise.resolve();
  const reload = (why = 'SIGHUP received'): Promise<void> => {
    reloading = reloading.then(async () => {
      // A worker still starting reads the file as it is now anyway.
      const live = slots.filter((s) => s.ready && s.worker?.isConnected());
      log.info(`${why}: ${live.length} worker(s) reload their configuration`);
      await notifier?.reloading();
      const answers = await Promise.all(live.map((slot) => new Promise<boolean | undefined>((resolve) => {
        const timer = setTimeout(() => done(undefined), RELOAD_WAIT_MS);
        const done = (ok: boolean | undefined): void => {
          clearTimeout(timer);
          reloads = reloads.filter((r) => r.done !== done);
          resolve(ok);
        };
        reloads.push({ slot, done });
        slot.worker!.send({ type: 'reload' } satisfies ToWorker);
      })));
      const refused = answers.filter((a) => a === false).length;
      const missing = answers.filter((a) => a === undefined).length;
      if (refused || missing) log.error(`reload: ${answers.length - refused - missing} worker(s) reloaded, ${refused} kept the running config (see their errors), ${missing} did not answer`);
      else log.info(`reload: all ${answers.length} worker(s) reloaded`);
      await notifier?.ready(`${count} workers`);
    });
    return reloading;
  };

  log.info(`starting ${count} workers (pids follow); connections are shared among them`);
  for (const slot of slots) fork(slot);
  process.on('SIGHUP', () => void reload());
  process.on('SIGUSR2', () => {
    log.info('SIGUSR2 received: every worker reopens the audit log');
    tell({ type: 'reopen-logs' });
  });
  process.on('SIGTERM', () => onStopSignal('SIGTERM'));
  process.on('SIGINT', () => onStopSignal('SIGINT'));
}
