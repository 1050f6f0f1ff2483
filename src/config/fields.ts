import { DurationError, parseDuration } from './duration';
import { joinPath, ProblemList } from './problems';

/**
 * Typed readers over one YAML mapping. Each reader records a problem (with the key path)
 * instead of throwing, and returns a fallback so reading can go on and report everything.
 */

export type Raw = Record<string, unknown>;

export function isMapping(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A short, safe rendering of a (non-secret) value for "got ..." in messages. */
export function shown(v: unknown): string {
  if (v === null || v === undefined) return 'an empty value';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return 'a list';
  return 'a mapping';
}

/** Like shown(), but names only the type: for values that might be secrets. */
export function typeOf(v: unknown): string {
  if (v === null || v === undefined) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `a ${typeof v}`;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

function suggestion(key: string, allowed: readonly string[]): string {
  const best = allowed
    .map((k) => ({ k, d: editDistance(key.slice(0, 64), k) }))
    .sort((x, y) => x.d - y.d)[0];
  return best && best.d <= 2 ? `; did you mean "${best.k}"?` : '';
}

export interface DurationOptions {
  /** Smallest accepted value in ms (default 0). */
  min?: number;
}

/** A mapping at a known path whose keys are checked against an allow-list. */
export class Section {
  constructor(
    readonly problems: ProblemList,
    readonly path: string,
    readonly raw: Raw,
  ) {}

  /**
   * Wraps `value` (expected to be a mapping) and reports keys outside `allowed`.
   * `sensitive`: where a misplaced value might be a password, report only its type.
   */
  static of(problems: ProblemList, path: string, value: unknown, allowed: readonly string[], sensitive = false): Section | undefined {
    if (!isMapping(value)) {
      problems.add(path, `expected a mapping with keys ${allowed.join(', ')}, got ${sensitive ? typeOf(value) : shown(value)}`);
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) {
        problems.add(joinPath(path, key), `unknown key (allowed here: ${allowed.join(', ')})${suggestion(key, allowed)}`);
      }
    }
    return new Section(problems, path, value);
  }

  /** An absent optional section: every reader returns its default. */
  static empty(path: string): Section {
    return new Section(new ProblemList(), path, {});
  }

  at(key: string): string {
    return joinPath(this.path, key);
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  problem(key: string, message: string): void {
    this.problems.add(this.at(key), message);
  }

  /** A nested mapping; undefined (with a problem when required) if absent or not a mapping. */
  section(key: string, allowed: readonly string[], required: boolean): Section | undefined {
    if (!this.has(key)) {
      if (required) this.problem(key, `is required: a mapping with keys ${allowed.join(', ')}`);
      return undefined;
    }
    return Section.of(this.problems, this.at(key), this.raw[key], allowed);
  }

  /** A non-empty string. Missing + no default -> problem (returns ''). */
  string(key: string, fallback?: string): string {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.problem(key, 'is required: expected a non-empty string');
      return '';
    }
    if (typeof v !== 'string' || v.trim() === '') {
      this.problem(key, `expected a non-empty string, got ${shown(v)}`);
      return fallback ?? '';
    }
    return v;
  }

  optionalString(key: string): string | undefined {
    return this.has(key) ? this.string(key) : undefined;
  }

  oneOf<T extends string>(key: string, choices: readonly T[], fallback: T): T {
    const v = this.raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
      this.problem(key, `expected one of ${choices.join(', ')}, got ${shown(v)}`);
      return fallback;
    }
    return v as T;
  }

  integer(key: string, min: number, max: number, fallback: number): number {
    const v = this.raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.problem(key, `expected an integer ${min}-${max}, got ${shown(v)}`);
      return fallback;
    }
    return v;
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') {
      this.problem(key, `expected true or false, got ${shown(v)}`);
      return fallback;
    }
    return v;
  }

  /** A duration in ms; `fallback` undefined means optional (returns undefined when absent). */
  duration(key: string, fallback: string, opts?: DurationOptions): number;
  duration(key: string, fallback: undefined, opts?: DurationOptions): number | undefined;
  duration(key: string, fallback: string | undefined, opts: DurationOptions = {}): number | undefined {
    const v = this.raw[key];
    const fallbackMs = fallback === undefined ? undefined : parseDuration(fallback);
    if (v === undefined || v === null) return fallbackMs;
    try {
      if (typeof v !== 'string' && typeof v !== 'number') throw new DurationError(`expected a duration such as 30s or 5m, got ${shown(v)}`);
      const ms = parseDuration(v);
      const min = opts.min ?? 0;
      if (ms < min) {
        this.problem(key, `must be at least ${min}ms, got ${shown(v)}`);
        return fallbackMs;
      }
      return ms;
    } catch (err) {
      this.problem(key, err instanceof DurationError ? err.message : String(err));
      return fallbackMs;
    }
  }

  /**
   * A list of non-empty strings. A single string is accepted as a one-item list.
   * `fallback` undefined means required; an empty list is a problem unless allowEmpty.
   */
  stringList(key: string, fallback: string[] | undefined, allowEmpty = false): string[] {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.problem(key, 'is required: expected a list of strings');
      return [];
    }
    const items = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(items)) {
      this.problem(key, `expected a list of strings, got ${shown(v)}`);
      return fallback ?? [];
    }
    const out: string[] = [];
    items.forEach((item, i) => {
      if (typeof item !== 'string' || item.trim() === '') {
        this.problems.add(`${this.at(key)}[${i}]`, `expected a non-empty string, got ${shown(item)}`);
      } else {
        out.push(item);
      }
    });
    if (items.length === 0 && !allowEmpty) this.problem(key, 'must list at least one value');
    return out;
  }
}
