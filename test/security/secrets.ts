/**
 * The security suite's leak check (issue 15, section 5): everything the in-process gateways
 * print while a test file runs (this process's stdout and stderr, every operational-log line at
 * debug level, every audit line, /metrics when the gateway has a metrics provider, and the error
 * messages clients received) is kept, and at the end grepped for every token, signature and
 * password the file used.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import winston from 'winston';
import { log } from '../../src/log';
import type { MemoryTransport } from '../helpers/memoryTransport';

export interface Printed {
  stdout: string[];
  stderr: string[];
  /** The operational log, formatted as the gateway writes it. */
  log: string[];
  /** Rendered /metrics bodies (none when the gateway has no metrics provider). */
  metrics: string[];
  /** What clients were told when they were refused. */
  clientErrors: string[];
  /** Audit sinks whose lines are read at the end. */
  watch(...audits: MemoryTransport[]): void;
  /** Every captured text by where it came from; stops the capture. */
  collect(): { source: string; text: string }[];
}

type Write = typeof process.stdout.write;

/** Starts capturing now, for the rest of the test file (call at module level). */
export function capturePrinted(): Printed {
  const audits: MemoryTransport[] = [];
  const p = { stdout: [] as string[], stderr: [] as string[], log: [] as string[], metrics: [] as string[], clientErrors: [] as string[] };
  const tee = (stream: NodeJS.WriteStream, into: string[]): (() => void) => {
    const original = stream.write.bind(stream) as Write;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      into.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as Write;
    return () => {
      stream.write = original;
    };
  };
  const restoreOut = tee(process.stdout, p.stdout);
  const restoreErr = tee(process.stderr, p.stderr);
  // Under Jest, console.* does not reach process.stdout: keep what any code prints through it.
  const methods = ['log', 'info', 'warn', 'error', 'debug'] as const;
  const originals = methods.map((m) => console[m]);
  methods.forEach((m, i) => {
    console[m] = (...args: unknown[]) => {
      (m === 'log' || m === 'info' ? p.stdout : p.stderr).push(args.map(String).join(' '));
      originals[i](...args);
    };
  });
  // Debug level, so a secret written only at debug would be found too; the console stays at its level.
  const level = log.level;
  const consoles = log.transports.filter((t) => t instanceof winston.transports.Console).map((t) => ({ t, level: t.level }));
  for (const c of consoles) c.t.level = level;
  const sink = new winston.transports.Stream({
    level: 'debug',
    stream: new Writable({ write(chunk, _enc, done) { p.log.push(String(chunk)); done(); } }),
  });
  log.add(sink);
  log.level = 'debug';
  let stopped = false;
  return {
    ...p,
    watch: (...a) => void audits.push(...a),
    collect() {
      if (!stopped) {
        stopped = true;
        restoreOut();
        restoreErr();
        methods.forEach((m, i) => (console[m] = originals[i]));
        log.remove(sink);
        log.level = level;
        for (const c of consoles) c.t.level = c.level;
      }
      const of = (source: string, texts: string[]): { source: string; text: string }[] => texts.map((text) => ({ source, text }));
      return [
        ...of('stdout', p.stdout), ...of('stderr', p.stderr), ...of('operational log', p.log), ...of('metrics', p.metrics),
        ...of('client error', p.clientErrors), ...audits.flatMap((a, i) => of(`audit #${i}`, a.lines)),
      ];
    },
  };
}

/** The forms of a secret to look for: itself, and for a JWT its signature, its signed part and its SHA-256. */
function needles(secret: string): string[] {
  const out = [secret, createHash('sha256').update(secret).digest('hex')];
  const parts = secret.split('.');
  if (parts.length === 3) out.push(parts[2], `${parts[0]}.${parts[1]}`);
  return out.filter((n) => n.length >= 8);
}

/** Fails, naming the source and the secret's position (never the secret), if any secret was printed. */
export function expectNothingLeaked(printed: Printed, secrets: string[]): void {
  const texts = printed.collect();
  expect(texts.length).toBeGreaterThan(0);
  expect(texts.some((t) => t.source.startsWith('audit'))).toBe(true);
  const found: string[] = [];
  [...new Set(secrets)].forEach((secret, i) => {
    for (const needle of needles(secret)) {
      const hit = texts.find((t) => t.text.includes(needle));
      if (hit) found.push(`secret #${i} (${secret.length} chars) appears in the ${hit.source}`);
    }
  });
  expect(found).toEqual([]);
}
