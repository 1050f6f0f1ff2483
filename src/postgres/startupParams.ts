/**
 * The client's startup parameters, replayed on a pooled upstream connection with SET
 * (pgbouncer does the same after its reset query). The gateway's own parameters (user,
 * database, replication) are not GUCs and are never replayed.
 */

const NOT_GUCS = new Set(['user', 'database', 'replication', 'options']);
const GUC_NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const MAX_APPLICATION_NAME_BYTES = 63; // NAMEDATALEN - 1

export class StartupParamError extends Error {}

/** Quote a value as a SQL string literal (standard_conforming_strings is on in every supported server). */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new StartupParamError('parameter values cannot contain NUL bytes');
  return `'${value.replace(/'/g, "''")}'`;
}

/** Cut a string to at most `max` UTF-8 bytes without splitting a character. */
export function truncateUtf8(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s;
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/** What a DBA sees in pg_stat_activity: "<client application_name> (tokengate: <sub>)". */
export function upstreamApplicationName(clientName: string | undefined, sub: string): string {
  const tag = `tokengate: ${sub}`;
  return truncateUtf8(clientName ? `${clientName} (${tag})` : tag, MAX_APPLICATION_NAME_BYTES);
}

/** Parse `-c name=value` / `--name=value` pairs from the `options` startup parameter. */
export function parseOptionsParameter(options: string): Record<string, string> {
  const out: Record<string, string> = {};
  // Backslash escapes a space inside a value, as in PostgreSQL's pg_split_opts.
  const words = options.match(/(?:\\.|[^\s\\])+/g)?.map((w) => w.replace(/\\(.)/g, '$1')) ?? [];
  for (let i = 0; i < words.length; i++) {
    let w = words[i];
    if (w === '-c' && i + 1 < words.length) w = words[++i];
    else if (w.startsWith('-c')) w = w.slice(2);
    else if (w.startsWith('--')) w = w.slice(2);
    else throw new StartupParamError(`unsupported option "${w}" in the options startup parameter; only -c name=value is accepted`);
    const eq = w.indexOf('=');
    if (eq <= 0) throw new StartupParamError(`option "${w}" must look like -c name=value`);
    out[w.slice(0, eq).replace(/-/g, '_')] = w.slice(eq + 1);
  }
  return out;
}

/** The GUCs a session asked for, application_name rewritten to carry the agent's identity. */
export function sessionSettings(parameters: Record<string, string>, sub: string): Record<string, string> {
  const settings: Record<string, string> = {};
  if (parameters.options) Object.assign(settings, parseOptionsParameter(parameters.options));
  for (const [name, value] of Object.entries(parameters)) {
    if (!NOT_GUCS.has(name)) settings[name] = value;
  }
  settings.application_name = upstreamApplicationName(parameters.application_name, sub);
  for (const name of Object.keys(settings)) {
    if (!GUC_NAME.test(name)) throw new StartupParamError(`"${name}" is not a valid configuration parameter name`);
  }
  return settings;
}

/**
 * One statement that applies every setting (a single round trip). set_config() takes the value
 * as text, as the startup packet and postgresql.conf give it, so a list setting keeps its
 * elements (`search_path=a,b`); `SET search_path = 'a,b'` would make that one schema named "a,b".
 */
export function settingsToSql(settings: Record<string, string>): string {
  const calls = Object.entries(settings).map(([name, value]) => `pg_catalog.set_config(${quoteLiteral(name)}, ${quoteLiteral(value)}, false)`);
  return calls.length ? `SELECT ${calls.join(', ')}` : '';
}
