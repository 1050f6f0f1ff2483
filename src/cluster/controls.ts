import type { Gateway } from '../core/gateway';
import { formatHostPort } from '../config/hostport';
import { log } from '../log';
import type { ServiceNotifier } from '../systemd/notify';

/**
 * What an operator's signal does to a running gateway, whether the signal reached this process
 * (one process) or the supervisor passed it on (a worker): the same reload, reopen and drain.
 */
export interface GatewayControls {
  /** SIGHUP: reads the config again, audited like the admin API's reload; resolves true when it applied. */
  reload(): Promise<boolean>;
  /** SIGUSR2: reopens the audit file. */
  reopenLogs(): void;
  /**
   * SIGTERM or SIGINT: no new connections, sessions finish for session.shutdownGrace, then exit 0;
   * a second call ends the remaining sessions at once.
   */
  stop(signal: string): void;
}

/** "postgres on 127.0.0.1:6432, mysql on ..." for logs and systemd's STATUS=. */
export function listeningStatus(gateway: Gateway): string {
  return [gateway.postgres && `postgres on ${formatHostPort(gateway.postgres)}`, gateway.mysql && `mysql on ${formatHostPort(gateway.mysql)}`]
    .filter(Boolean).join(', ');
}

/** systemd hears of each step when it started this process (`notifier`); a worker has none. */
export function gatewayControls(gateway: Gateway, notifier: ServiceNotifier | undefined): GatewayControls {
  const listening = listeningStatus(gateway);
  let reloading = Promise.resolve(true);
  let stopping = false;
  return {
    reload() {
      reloading = reloading.then(async () => {
        log.info('SIGHUP received: reloading the configuration');
        await notifier?.reloading();
        const outcome = await gateway.reload().catch((err: Error) => {
          log.error(`reload failed: ${err.message}`);
          return undefined;
        });
        // Whoever may signal the process changed its config: audited as the admin API's reload is.
        gateway.audit.write({
          event: 'admin_request', method: 'SIGHUP', path: '-', remote: 'local', caller: 'signal', status: outcome?.ok ? 200 : 400,
          action: outcome?.ok ? `reloaded: ${outcome.changed.length ? `changed ${outcome.changed.join(', ')}` : 'nothing changed'}` : `reload refused (${outcome ? outcome.problems.length : 1} problem(s))`,
        });
        await gateway.keysFetched();
        await notifier?.ready(`listening: ${listening}`);
        return outcome?.ok === true;
      });
      return reloading;
    },
    reopenLogs() {
      log.info('SIGUSR2 received: reopening the audit log');
      gateway.reopenLogs().then(
        () => gateway.audit.write({ event: 'admin_request', method: 'SIGUSR2', path: '-', remote: 'local', caller: 'signal', status: 200, action: 'reopened logs' }),
        (err: Error) => log.error(`reopening the audit log failed: ${err.message}`));
    },
    stop(signal) {
      if (stopping) {
        log.warn(`${signal} received again: ending the remaining sessions now`);
        void gateway.close();
        return;
      }
      stopping = true;
      const graceMs = gateway.config.current().session.shutdownGraceMs;
      log.info(`${signal} received: no new connections; sessions may finish for ${graceMs / 1000}s (each ends once idle outside a transaction); send ${signal} again to end them now`);
      const told = notifier?.stopping('draining sessions');
      gateway.shutdown(graceMs).then(async () => {
        notifier?.close();
        await told;
        log.info('tokengate stopped');
        process.exit(0);
      }, (err: Error) => {
        log.error(`shutdown failed: ${err.message}`);
        process.exit(1);
      });
    },
  };
}
