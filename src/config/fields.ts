import { z } from 'zod';
import { DURATION_TEXT, DurationError, notADuration, parseDuration } from './duration';
import { readable } from './issues';
import { isMapping, shown, typeOf, unknownKeyMessage } from './messages';

/**
 * The building blocks of the config schema: zod schemas for each kind of field, each with an
 * error map that writes the message a DBA reads ("expected an integer 1-65535, got "abc"").
 * A missing key arrives as the input `undefined`, so every map can say "is required" itself.
 */

type RawIssue = z.core.$ZodRawIssue;
type Render = (v: unknown) => string;

/** `what` is said after "expected" (or "is required:"); `render` shows the offending value. */
export function expected(what: string, render: Render = shown, required = `is required: ${what}`) {
  return (iss: RawIssue): string => (iss.input === undefined ? required : `expected ${what}, got ${render(iss.input)}`);
}

const textError = expected('a non-empty string', shown, 'is required: expected a non-empty string');

/** A non-empty string (kept as written: only the emptiness check ignores blanks). */
export function text(error: (iss: RawIssue) => string = textError) {
  return z.string({ error }).regex(/\S/, { error });
}

export function bool() {
  return z.boolean({ error: expected('true or false') });
}

export function oneOf<const T extends readonly [string, ...string[]]>(choices: T) {
  const list = choices.join(', ');
  return z.enum(choices, { error: expected(`one of ${list}`, shown, `is required: one of ${list}`) });
}

/** A whole number in [min, max]; one check, so a value that is wrong twice is reported once. */
export function integer(min: number, max: number) {
  return z.number({ error: expected(`an integer ${min}-${max}`) })
    .refine((n) => Number.isInteger(n) && n >= min && n <= max, { error: expected(`an integer ${min}-${max}`) })
    .meta({ type: 'integer', minimum: min, maximum: max });
}

export interface DurationOptions {
  /** Smallest accepted value in ms (default 0). */
  min?: number;
}

/** "30s", "5m", "1h30m" or a number of seconds; the output is milliseconds. */
export function duration(opts: DurationOptions = {}) {
  const min = opts.min ?? 0;
  const error = (iss: RawIssue): string => notADuration(iss.input);
  return z.union([z.string({ error }).regex(DURATION_TEXT, { error }), z.number({ error }).min(0, { error })], { error })
    .transform((v, ctx) => {
      try {
        const ms = parseDuration(v);
        if (ms >= min) return ms;
        ctx.addIssue({ code: 'custom', message: `must be at least ${min}ms, got ${shown(v)}` });
      } catch (err) {
        if (!(err instanceof DurationError)) throw err;
        ctx.addIssue({ code: 'custom', message: err.message });
      }
      return z.NEVER;
    });
}

export interface ListOptions {
  /** An empty list is accepted (default: at least one value). */
  allowEmpty?: boolean;
}

/** A list of non-empty strings; a single string is accepted as a one-item list. */
export function stringList(opts: ListOptions = {}) {
  const error = expected('a string or a list of strings', shown, 'is required: expected a string or a list of strings');
  const list = z.array(text(), { error });
  return z.union([text().transform((s) => [s]), opts.allowEmpty ? list : list.min(1, { error: 'must list at least one value' })], { error });
}

export interface SectionOptions {
  /** Where a misplaced value might be a password: name only its type. */
  sensitive?: boolean;
  /** Leave absent optional keys out of the output; by default every key is there, undefined when absent. */
  omitAbsent?: boolean;
}

/**
 * The mapping as zod should see it: keys left empty in YAML (`tls:` with everything below
 * commented out) count as absent, and absent keys are listed as undefined unless `omitAbsent`.
 */
function normalized(keys: readonly string[], opts: SectionOptions) {
  return (v: unknown): unknown => {
    if (!isMapping(v)) return v;
    // Only known keys: an unknown key is reported even when its value is empty.
    const given = Object.entries(v).filter(([key, value]) => value !== null || !keys.includes(key));
    return Object.fromEntries(opts.omitAbsent ? given : [...keys.map((key) => [key, undefined]), ...given]);
  };
}

/** A mapping with exactly these keys; an unknown key is a problem, with a suggestion when it looks like a typo. */
export function section<S extends z.ZodRawShape>(shape: S, opts: SectionOptions = {}) {
  const keys = Object.keys(shape);
  const mapping = expected(`a mapping with keys ${keys.join(', ')}`, opts.sensitive ? typeOf : shown);
  return z.preprocess(normalized(keys, opts), z.strictObject(shape, {
    // One line per unknown key, in the issue's order: issues.ts gives each its own path.
    error: (iss) => (iss.code === 'unrecognized_keys' ? iss.keys.map((key) => unknownKeyMessage(key, keys)).join('\n') : mapping(iss)),
  }));
}

/**
 * For a check across the fields of one mapping. Zod skips such checks once anything in the
 * mapping failed; this runs it whenever the listed fields themselves were read without problems,
 * so that every problem is still reported in one pass. The check sees those fields parsed.
 */
export function whenReadable(...keys: string[]): z.core.$ZodSuperRefineParams {
  return { when: (payload) => isMapping(payload.value) && keys.every((key) => readable(payload.issues, [key])) };
}

/** Names of upstreams, aliases, roles and grants: they appear in startup packets, logs and messages. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.$-]{0,62}$/;
const NAME_RULE = 'start with a letter, digit or _, then letters, digits, _ . $ -, at most 63 characters';
/** Names that would reach Object.prototype when used as record keys (load.ts refuses __proto__ everywhere). */
const RESERVED_NAMES = ['__proto__', 'constructor', 'prototype'];

/** A name (`what` is "upstream", "role", ...), as a record key or a value. */
export function name(what: string) {
  return z.string({ error: textError })
    .regex(NAME, { error: (iss) => `${what} name ${shown(iss.input)} is not valid: names ${NAME_RULE}` })
    .refine((n) => !RESERVED_NAMES.includes(n), { error: (iss) => `${what} name ${shown(iss.input)} is reserved; choose another name` });
}

export interface MapOptions {
  /** After "expected", e.g. "a mapping of role name -> { user, password | passwordFile }". */
  what: string;
  /** The problem for an empty mapping. */
  empty: string;
  sensitive?: boolean;
}

/** A mapping from names to values, with at least one entry. */
export function nameMap<K extends z.core.$ZodType<string, string>, V extends z.ZodType>(key: K, value: V, opts: MapOptions) {
  return z.record(key, value, { error: expected(opts.what, opts.sensitive ? typeOf : shown) })
    .refine((entries) => Object.keys(entries).length > 0, { error: opts.empty })
    .meta({ minProperties: 1 });
}

/** Each entry of a name map also carries its name, so code holding one entry knows which it is. */
export function withNames<V extends object>(entries: Record<string, V>): Record<string, { name: string } & V> {
  return Object.fromEntries(Object.entries(entries).map(([key, value]) => [key, { name: key, ...value }]));
}

/** `clockSkew: 30s` in YAML is `clockSkewMs: 30000` in the Config: the unit is in the name where the number is used. */
export type WithMsKeys<T, K extends keyof T> = { [P in keyof T as P extends K ? `${P & string}Ms` : P]: T[P] };

export function withMsKeys<T extends object, K extends keyof T & string>(obj: T, keys: readonly K[]): WithMsKeys<T, K> {
  const renamed = Object.entries(obj).map(([key, value]) => [(keys as readonly string[]).includes(key) ? `${key}Ms` : key, value]);
  return Object.fromEntries(renamed) as WithMsKeys<T, K>;
}
