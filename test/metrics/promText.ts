/**
 * A small parser of the Prometheus text exposition format (version 0.0.4), enough to check what
 * a scrape says: samples with their labels, and each family's TYPE and HELP.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  types: Map<string, string>;
  help: Map<string, string>;
  /** The samples named `name` whose labels include every one of `labels`. */
  find(name: string, labels?: Record<string, string>): Sample[];
  /** The one sample named `name` with exactly these labels (plus none else), or undefined. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** The sum of the samples `find` returns. */
  sum(name: string, labels?: Record<string, string>): number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$/;

export function parsePromText(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (TYPE|HELP) (\S+) ?(.*)$/.exec(line);
      if (m?.[1] === 'TYPE') types.set(m[2], m[3]);
      else if (m?.[1] === 'HELP') help.set(m[2], m[3]);
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    samples.push({ name: m[1], labels: m[3] ? parseLabels(m[3], line) : {}, value: parseValue(m[4]) });
  }
  const matches = (s: Sample, labels: Record<string, string>): boolean => Object.entries(labels).every(([k, v]) => s.labels[k] === v);
  const find = (name: string, labels: Record<string, string> = {}): Sample[] => samples.filter((s) => s.name === name && matches(s, labels));
  return {
    samples, types, help, find,
    value(name, labels = {}) {
      return find(name, labels).find((s) => Object.keys(s.labels).length === Object.keys(labels).length)?.value;
    },
    sum: (name, labels) => find(name, labels).reduce((a, s) => a + s.value, 0),
  };
}

function parseValue(v: string): number {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  if (v.toLowerCase() === 'nan') return NaN; // prom-client writes "Nan"; Prometheus reads NaN in any case
  const n = Number(v);
  if (Number.isNaN(n)) throw new Error(`not a sample value: ${v}`);
  return n;
}

/** `a="x",b="y\"z"`: label values escape backslash, double quote and newline. */
function parseLabels(body: string, line: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(body.slice(i));
    if (!name || body[i + name[0].length] !== '=' || body[i + name[0].length + 1] !== '"') throw new Error(`bad labels in: ${line}`);
    i += name[0].length + 2;
    let value = '';
    for (; i < body.length && body[i] !== '"'; i++) {
      if (body[i] === '\\') {
        i++;
        value += body[i] === 'n' ? '\n' : body[i];
      } else {
        value += body[i];
      }
    }
    if (body[i] !== '"') throw new Error(`unterminated label value in: ${line}`);
    out[name[0]] = value;
    i++;
    if (body[i] === ',') i++;
  }
  return out;
}
