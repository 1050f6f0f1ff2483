import type { Command } from 'commander';
import { startGateway, type Gateway } from '../core/gateway';
import { configWarnings } from '../config/warnings';
import type { Config } from '../config/schema';
import { formatHostPort } from '../config/hostport';
import { configureLog, log } from '../log';
import { serviceNotifier, type ServiceNotifier } from '../systemd/notify';
import { CONFIG_OPTION_HELP, exitWithSettingsError, loadConfigOrExit } from './configOption';
import { logCheckFailures, runOnlineChecks } from './onlineChecks';

const LISTENERS = ['postgres', 'mysql', 'admin'] as const;

/** Why the gateway could not start, in terms of the setting to change. */
export function startFailureMessage(err: unknown, config: Config): string {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  const detail = e instanceof Error ? e.message : String(err);
  if (e.syscall === 'listen' || e.syscall === 'bind') {
    // Name the listener by the address in the error: postgres and mysql listeners start one after the other.
    const key = LISTENERS.find((k) => config.listen[k]?.port === e.port && config.listen[k]?.host === e.address);
    const setting = key ? `listen.${key}` : 'listen';
    const where = e.address !== undefined && e.port !== undefined ? formatHostPort({ host: e.address, port: e.port }) : 'the configured address';
    const why: Record<string, string> = {
      EADDRINUSE: `another process is already listening there; stop it or choose another port in ${setting}`,
      EACCES: `this user may not listen on that port (ports below 1024 need privileges); choose a port above 1023 in ${setting}`,
      EADDRNOTAVAIL: `that address is not one of this machine's addresses; fix the host in ${setting}`,
    };
    return `tokengate could not start: cannot listen on ${where} (${e.code ?? detail}): ${why[e.code ?? ''] ?? detail}`;
  }
  if (e.syscall === 'open' || e.syscall === 'read') {
    const files: Array<[string, string | undefined]> = [['tls.certFile', config.tls.certFile], ['tls.keyFile', config.tls.keyFile], ['audit.file', config.audit.file]];
    const setting = files.find(([, f]) => f !== undefined && e.path !== undefined && f === e.path)?.[0];
    return `tokengate could not start: cannot open ${e.path ?? 'a file'} (${e.code}); check ${setting ?? 'the file paths in the config'}: the path and the permissions of the tokengate user`;
  }
  if (typeof e.code === 'string' && e.code.startsWith('ERR_OSSL')) {
    return `tokengate could not start: the TLS certificate or key is not usable (${detail}); tls.certFile must be a PEM certificate chain and tls.keyFile its PEM private key`;
  }
  return `tokengate could not start: ${detail}`;
}

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the gateway')
    .option('-c, --config <path>', CONFIG_OPTION_HELP)
    .action(async (opts: { config?: string }) => {
      const config = loadConfigOrExit(opts.config);
      configureLog(config.log);
      for (const w of configWarnings(config)) log.warn(w);
      let gateway: Gateway;
      try {
        gateway = await startGateway(config);
      } catch (err) {
        // Settings the token verifier refuses, an unusable listen address or TLS files: exit 2 like a bad config.
        return exitWithSettingsError(startFailureMessage(err, config));
      }
      // Upstream logins and the issuer, checked once: failures are warnings, the gateway serves anyway.
      runOnlineChecks(config).then(logCheckFailures, (err: Error) => log.warn(`startup checks could not run: ${err.message}`));
      handleSignals(gateway, serviceNotifier());
    });
}

/**
 * What the process does on each signal: SIGHUP reloads the config, SIGUSR2 reopens the audit
 * file, SIGTERM and SIGINT drain (session.shutdownGrace) and exit 0; a second SIGTERM or SIGINT
 * ends the remaining sessions at once. systemd hears of each step when it started the process.
 */
function handleSignals(gateway: Gateway, notifier: ServiceNotifier | undefined): void {
  const listening = [gateway.postgres && `postgres on ${formatHostPort(gateway.postgres)}`, gateway.mysql && `mysql on ${formatHostPort(gateway.mysql)}`]
    .filter(Boolean).join(', ');
  // systemd's READY=1 waits for the issuer's keys, so dependants start once logins can be verified.
  void gateway.keysFetched().then(() => notifier?.ready(`listening: ${listening}`));

  let reloading = Promise.resolve();
  process.on('SIGHUP', () => {
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
    });
  });
  process.on('SIGUSR2', () => {
    log.info('SIGUSR2 received: reopening the audit log');
    gateway.reopenLogs().then(
      () => gateway.audit.write({ event: 'admin_request', method: 'SIGUSR2', path: '-', remote: 'local', caller: 'signal', status: 200, action: 'reopened logs' }),
      (err: Error) => log.error(`reopening the audit log failed: ${err.message}`));
  });

  let stopping = false;
  const stop = (signal: string): void => {
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
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
