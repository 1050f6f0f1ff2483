import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { quoteEnvReferences } from './envRefs';
import { formatPath, problemsFrom } from './issues';
import { isMapping } from './messages';
import { ConfigError, type ConfigProblem } from './problems';
import { type Config, configSchema } from './schema';

/** The public entry points for reading tokengate.yaml into a validated Config. */

export { ConfigError } from './problems';
export type { ConfigProblem } from './problems';
export { parseDuration, DurationError } from './duration';
export { configWarnings } from './warnings';

/** A config this large is not a config; refusing it keeps parsing bounded. */
const MAX_CONFIG_BYTES = 1024 * 1024;

export function defaultConfigPaths(): string[] {
  return ['./tokengate.yaml', '/etc/tokengate/tokengate.yaml'];
}

/** The explicit path if given, else the first default that exists. */
export function resolveConfigPath(explicit?: string): string {
  if (explicit) return explicit;
  const found = defaultConfigPaths().find((p) => existsSync(p));
  if (found) return found;
  throw new ConfigError('(no file)', [{
    path: '',
    message: `no config file found; looked in ${defaultConfigPaths().join(', ')}. Pass --config /path/to/tokengate.yaml (see examples/tokengate.yaml)`,
  }]);
}

function readConfigFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(path, [{ path: '', message: `cannot read the config file (${code}); check the path and its permissions` }]);
  }
  try {
    const size = fstatSync(fd).size;
    if (size > MAX_CONFIG_BYTES) {
      throw new ConfigError(path, [{ path: '', message: `the config file is ${size} bytes; the limit is ${MAX_CONFIG_BYTES}` }]);
    }
    const buf = Buffer.alloc(size);
    let read = 0;
    while (read < size) {
      const n = readSync(fd, buf, read, size - read, read);
      if (n === 0) break;
      read += n;
    }
    return buf.subarray(0, read).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Reads, parses and validates the config at `path`; relative paths inside it are relative to its directory. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  return parseConfig(readConfigFile(path), path, env, dirname(resolve(path)));
}

/** One broken line often yields dozens of follow-on YAML errors; the first few locate it. */
const MAX_YAML_ERRORS = 5;

/**
 * The offending line as the user wrote it, with every value hidden: only the indentation, a list
 * dash and a leading `key:` are shown, because anything after it (or a quoted string, or a word
 * that merely looks like a key later on the line) could be an inline password.
 */
export function maskedLine(line: string): string {
  const m = /^(\s*)((?:-\s+)*)([A-Za-z_][A-Za-z0-9_.-]*:(?=\s|$))?(.*)$/.exec(line)!;
  const [, indent, dashes, key = '', rest] = m;
  const hidden = rest.trim() === '' ? '' : `${key ? ' ' : ''}...`;
  return `${indent}${dashes}${key}${hidden}`;
}

/** "at line 3": the line itself (or, when it is blank, the nearest written line above it, where the problem began). */
function offendingLine(text: string, line: number | undefined): string | undefined {
  if (line === undefined) return undefined;
  const lines = text.split(/\r?\n/);
  for (let n = Math.min(line, lines.length); n >= 1; n--) {
    if (lines[n - 1].trim() !== '') return `line ${n} reads (values hidden): ${JSON.stringify(maskedLine(lines[n - 1]))}`;
  }
  return undefined;
}

/**
 * YAML errors carry a code frame of the offending line and quote the offending token, either of
 * which could be an inline password: keep only the first line, with quoted text removed, and show
 * the line with its values masked.
 */
function yamlProblem(err: { message: string; linePos?: { line: number }[] }, text: string): string {
  const first = err.message.split('\n')[0].replace(/:$/, '').replace(/"(?:[^"\\]|\\.)*"/g, '(text not shown)');
  const where = offendingLine(text, err.linePos?.[0]?.line);
  return `YAML syntax error: ${first}${where ? `; ${where}` : ''}`;
}

function yamlError(source: string, errors: { message: string; linePos?: { line: number }[] }[], text: string): ConfigError {
  const problems = errors.slice(0, MAX_YAML_ERRORS).map((e) => ({ path: '', message: yamlProblem(e, text) }));
  if (errors.length > MAX_YAML_ERRORS) problems.push({ path: '', message: `(${errors.length - MAX_YAML_ERRORS} more YAML errors follow from the first ones)` });
  return new ConfigError(source, problems);
}

/**
 * A `__proto__` key would reach Object.prototype in code that copies the config, and zod's records
 * skip it silently: refuse it wherever it appears (removing it, so nothing after this sees it).
 */
function removeProtoKeys(value: unknown, path: PropertyKey[], problems: ConfigProblem[], seen = new WeakSet<object>()): void {
  if (typeof value !== 'object' || value === null || seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value)) {
    value.forEach((item, i) => removeProtoKeys(item, [...path, i], problems, seen));
    return;
  }
  if (!isMapping(value)) return;
  if (Object.prototype.hasOwnProperty.call(value, '__proto__')) {
    problems.push({ path: formatPath([...path, '__proto__']), message: 'the key name "__proto__" is reserved; choose another name' });
    delete value.__proto__;
  }
  for (const [key, item] of Object.entries(value)) removeProtoKeys(item, [...path, key], problems, seen);
}

/** Parses and validates config text; `source` names it in messages. Throws one ConfigError listing every problem. */
export function parseConfig(yamlText: string, source: string, env: NodeJS.ProcessEnv = process.env, baseDir?: string): Config {
  if (Buffer.byteLength(yamlText, 'utf8') > MAX_CONFIG_BYTES) {
    throw new ConfigError(source, [{ path: '', message: `the config is larger than ${MAX_CONFIG_BYTES} bytes` }]);
  }
  const doc = parseDocument(quoteEnvReferences(yamlText), { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) throw yamlError(source, doc.errors, yamlText);
  let data: unknown;
  try {
    // maxAliasCount bounds "billion laughs" alias expansion.
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    throw yamlError(source, [err as Error], yamlText);
  }
  const problems: ConfigProblem[] = [];
  removeProtoKeys(data, [], problems);
  const result = configSchema({ source, env, baseDir: baseDir ?? dirname(resolve(source)) }).safeParse(data);
  if (!result.success) problems.push(...problemsFrom(result.error.issues));
  if (problems.length > 0 || !result.success) throw new ConfigError(source, problems);
  return result.data;
}
