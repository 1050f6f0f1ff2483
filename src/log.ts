import winston from 'winston';
import type { LogConfig } from './config/schema';

/**
 * The operational log (startup, listeners, reloads, upstream trouble) on stderr, so that stdout
 * stays free for the audit stream: readable text on a terminal, JSON lines otherwise (journald,
 * a log collector), or as `log.format` says. `log.level` sets the level; TOKENGATE_LOG_LEVEL,
 * when set, overrides it (for a one-off debug run without editing the config). Never pass a
 * token or secret to it.
 */

type Format = LogConfig['format'];

const text = winston.format.printf((i) => {
  const { level, message, timestamp, ...rest } = i;
  const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
  return `${timestamp} ${level} ${message}${extra}`;
});

function formatFor(format: Format): winston.Logform.Format {
  const json = format === 'json' || (format === 'auto' && !process.stderr.isTTY);
  return winston.format.combine(winston.format.timestamp(), json ? winston.format.json() : text);
}

function levelFor(level: string | undefined): string {
  return process.env.TOKENGATE_LOG_LEVEL || level || 'info';
}

export const log = winston.createLogger({
  level: levelFor(undefined),
  format: formatFor('auto'),
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug', 'verbose', 'silly'] })],
});

/** Applies the config's log settings (at start and on every reload). */
export function configureLog(config: LogConfig): void {
  log.level = levelFor(config.level);
  log.format = formatFor(config.format);
}
