import { execFile } from 'node:child_process';
import { log } from '../log';

/**
 * The sd_notify protocol for `Type=notify` units. Node.js cannot send AF_UNIX datagrams, so each
 * message is sent by systemd's own `systemd-notify` tool (the unit needs NotifyAccess=all: the
 * sender is that child, not the main process). systemd-notify waits for the service manager to
 * have read the message (a BARRIER=1 after it) before it exits, so the message is not lost when
 * the short-lived sender is gone before systemd looks up whose it is. Messages are sent one at a
 * time, in order. Without NOTIFY_SOCKET (not started by systemd) nothing is sent.
 */

/** How long one systemd-notify may take (its own barrier wait is 5 s). */
const SEND_TIMEOUT_MS = 10_000;

export interface ServiceNotifier {
  /** The listeners are bound and the issuer's keys loaded (or their fetch failed): READY=1. */
  ready(status: string): Promise<void>;
  /** A reload starts: RELOADING=1 (with MONOTONIC_USEC, as systemd 253's notify-reload wants); send ready() when it is over. */
  reloading(): Promise<void>;
  /** Shutdown has begun: STOPPING=1. */
  stopping(status: string): Promise<void>;
  /** Stops the watchdog pings. */
  close(): void;
}

/** A notifier for the environment systemd gave this process, or undefined when it is not a notify service. */
export function serviceNotifier(env: NodeJS.ProcessEnv = process.env, command = 'systemd-notify'): ServiceNotifier | undefined {
  if (!env.NOTIFY_SOCKET) return undefined;
  let chain = Promise.resolve();
  let warned = false;
  const send = (...assignments: string[]): Promise<void> => {
    chain = chain.then(() => new Promise<void>((resolve) => {
      execFile(command, assignments, { env, timeout: SEND_TIMEOUT_MS }, (err, _stdout, stderr) => {
        if (err && !warned) {
          warned = true;
          log.error(`cannot notify systemd (${assignments[0]}) through ${command}: ${String(stderr).trim() || err.message};` +
            ' install systemd-notify and set NotifyAccess=all in the unit, or use Type=simple');
        }
        resolve();
      });
    }));
    return chain;
  };

  const watchdog = watchdogIntervalMs(env);
  const timer = watchdog === undefined ? undefined : setInterval(() => void send('WATCHDOG=1'), watchdog);
  timer?.unref();

  return {
    ready: (status) => send('READY=1', `STATUS=${status}`),
    reloading: () => send('RELOADING=1', `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`, 'STATUS=reloading the configuration'),
    stopping: (status) => send('STOPPING=1', `STATUS=${status}`),
    close: () => clearInterval(timer),
  };
}

/** Half of WATCHDOG_USEC, when the watchdog is meant for this process (WATCHDOG_PID unset or ours). */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== process.pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}
