import type { Command } from 'commander';
import { startGateway, type Gateway } from '../core/gateway';
import { configWarnings } from '../config/warnings';
import type { Config } from '../config/schema';
import { formatHostPort } from '../config/hostport';
import { gatewayControls, listeningStatus } from '../cluster/controls';
import { superviseWorkers } from '../cluster/supervisor';
import { labelWorkerLog, serveAsWorker, workerInstanceId, workerSlot } from '../cluster/worker';
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
      const worker = workerSlot();
      if (worker !== undefined) labelWorkerLog(worker);
      // The supervisor and a single process say it once; workers re-read the same file.
      if (worker === undefined) for (const w of configWarnings(config)) log.warn(w);
      if (worker === undefined && config.workers > 1) {
        superviseWorkers(config.workers, serviceNotifier());
        runOnlineChecks(config).then(logCheckFailures, (err: Error) => log.warn(`startup checks could not run: ${err.message}`));
        return;
      }
      let gateway: Gateway;
      try {
        gateway = await startGateway(config, worker === undefined ? {} : { instanceId: workerInstanceId(worker) });
      } catch (err) {
        // Settings the token verifier refuses, an unusable listen address or TLS files: exit 2 like a bad config.
        return exitWithSettingsError(startFailureMessage(err, config));
      }
      if (worker !== undefined) return serveAsWorker(gateway);
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
  // systemd's READY=1 waits for the issuer's keys, so dependants start once logins can be verified.
  void gateway.keysFetched().then(() => notifier?.ready(`listening: ${listeningStatus(gateway)}`));
  const controls = gatewayControls(gateway, notifier);
  process.on('SIGHUP', () => void controls.reload());
  process.on('SIGUSR2', () => controls.reopenLogs());
  process.on('SIGINT', () => controls.stop('SIGINT'));
  process.on('SIGTERM', () => controls.stop('SIGTERM'));
}
