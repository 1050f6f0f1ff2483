import { hostname } from 'node:os';
import type { Gateway } from '../core/gateway';
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
  const controls = gatewayControls(gateway, undefined);
  let stopping = false;
  const drain = (why: string): void => {
    if (stopping) return;
    stopping = true;
    controls.stop(why);
  };
  void gateway.keysFetched().then(() => send({ type: 'ready', listening: listeningStatus(gateway) }));
  process.on('message', (m: unknown) => {
    if (!isToWorker(m)) return;
    if (m.type === 'reload') void controls.reload().then((ok) => send({ type: 'reloaded', ok }));
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
