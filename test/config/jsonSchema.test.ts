/**
 * The JSON Schema editors use: the committed schema/tokengate.schema.json is what the code
 * generates, it describes every key for hover text, and it agrees with the loader on the
 * examples below (it cannot check references or secrets, which only check-config can).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { configJsonSchema, configJsonSchemaText } from '../../src/config/jsonSchema';
import { configError, parseDoc, withDoc } from './helpers';

const COMMITTED = join(__dirname, '../../schema/tokengate.schema.json');

test('schema/tokengate.schema.json is what the code generates', () => {
  const committed = readFileSync(COMMITTED, 'utf8');
  if (committed !== configJsonSchemaText()) {
    throw new Error('schema/tokengate.schema.json is out of date with src/config/schema.ts: regenerate it with `npm run schema` and commit it');
  }
});

/** Every `properties` entry, by its key path, with its schema. */
function properties(node: unknown, path = ''): [string, Record<string, unknown>][] {
  if (typeof node !== 'object' || node === null) return [];
  const out: [string, Record<string, unknown>][] = [];
  for (const [key, value] of Object.entries(node)) {
    if (key === 'properties' && typeof value === 'object' && value !== null) {
      for (const [name, prop] of Object.entries(value)) {
        out.push([`${path}.${name}`, prop as Record<string, unknown>], ...properties(prop, `${path}.${name}`));
      }
    } else {
      out.push(...properties(value, path));
    }
  }
  return out;
}

test('every key has a description for editors to show', () => {
  const undescribed = properties(configJsonSchema()).filter(([, s]) => typeof s.description !== 'string' || s.description === '').map(([p]) => p);
  expect(undescribed).toEqual([]);
});

describe('the JSON Schema and the loader agree', () => {
  const validate = new Ajv2020({ allErrors: true }).compile(configJsonSchema());

  test.each<[string, (d: Record<string, any>) => void]>([
    ['the base document', () => {}],
    ['durations as numbers of seconds and combinations', (d) => { d.oidc.clockSkew = 45; d.session = { authTimeout: '1m30s' }; }],
    ['a list of audiences', (d) => { d.oidc.audience = ['api://a', 'api://b']; }],
    ['databases ["*"]', (d) => { d.grants[0].databases = ['*']; }],
  ])('accepted: %s', (_label, mutate) => {
    const doc = withDoc(mutate);
    expect(validate(doc) ? [] : validate.errors).toEqual([]);
    expect(parseDoc(doc).source).toBe('test.yaml');
  });

  test.each<[string, (d: Record<string, any>) => void]>([
    ['an unknown key', (d) => { d.grant = []; }],
    ['a missing required section', (d) => { delete d.oidc; }],
    ['a bad protocol', (d) => { d.upstreams['app-pg'].protocol = 'oracle'; }],
    ['a port out of range', (d) => { d.upstreams['app-pg'].port = 70000; }],
    ['a duration that is not one', (d) => { d.oidc.clockSkew = '30 parsecs'; }],
    ['an inline password', (d) => { d.upstreams['app-pg'].roles.reader.password = 'hunter2'; }],
    ['an invalid alias name', (d) => { d.upstreams['app-pg'].databases['my db'] = 'x'; }],
    ['an empty match', (d) => { d.grants[0].match = {}; }],
    ['no upstreams', (d) => { d.upstreams = {}; }],
  ])('refused: %s', (_label, mutate) => {
    const doc = withDoc(mutate);
    expect(validate(doc)).toBe(false);
    expect(configError(doc).problems.length).toBeGreaterThan(0);
  });
});
