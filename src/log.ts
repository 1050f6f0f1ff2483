import winston from 'winston';

/**
 * The operational log (startup, listeners, upstream trouble): human-oriented, to stderr,
 * so that stdout stays free for the audit stream. Never pass a token or secret to it.
 */
export const log = winston.createLogger({
  level: process.env.TOKENGATE_LOG_LEVEL ?? 'info',
  format: winston.format.combine(
    winston.format.timestamp(),
    winston.format.printf((i) => {
      const { level, message, timestamp, ...rest } = i;
      const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
      return `${timestamp} ${level} ${message}${extra}`;
    }),
  ),
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug', 'verbose', 'silly'] })],
});
