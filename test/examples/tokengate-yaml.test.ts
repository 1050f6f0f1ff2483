/**
 * examples/tokengate.yaml is the commented reference config: it must load, it must validate
 * against the JSON Schema editors use (its first line points editors at it), and it must show
 * every key the schema accepts (read from the schema itself, so a key added to the schema
 * without an example here fails this test).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { isMap, isPair, isScalar, parse, parseDocument, visit } from 'yaml';
import { configJsonSchema } from '../../src/config/jsonSchema';
import { loadConfig } from '../../src/config/load';

const ROOT = join(__dirname, '../..');
const EXAMPLE = join(ROOT, 'examples/tokengate.yaml');

type Node = { properties: Record<string, Node>; additionalProperties: Node; items: Node };

/** The keys each section of the schema accepts, read from its JSON Schema. */
function schemaKeyLists(): Record<string, string[]> {
  const top = configJsonSchema() as unknown as Node;
  const upstream = top.properties.upstreams.additionalProperties;
  const grant = top.properties.grants.items;
  const sections: Record<string, Node> = {
    TOP_KEYS: top,
    LISTEN_KEYS: top.properties.listen,
    PROXY_PROTOCOL_KEYS: top.properties.listen.properties.proxyProtocol,
    TLS_KEYS: top.properties.tls,
    OIDC_KEYS: top.properties.oidc,
    UPSTREAM_KEYS: upstream,
    POOL_KEYS: upstream.properties.pool,
    ROLE_KEYS: upstream.properties.roles.additionalProperties,
    GRANT_KEYS: grant,
    MATCH_KEYS: grant.properties.match,
    AUDIT_KEYS: top.properties.audit,
    SESSION_KEYS: top.properties.session,
    LIMITS_KEYS: top.properties.limits,
    ADMIN_KEYS: top.properties.admin,
    ADMIN_MATCH_KEYS: top.properties.admin.properties.match,
    STATE_KEYS: top.properties.state,
    LOG_KEYS: top.properties.log,
    REDIS_KEYS: top.properties.redis,
  };
  // Every mapping with named keys in the schema is one of the sections above, so a new one is noticed.
  let mappings = 0;
  JSON.stringify(top, (key, value) => {
    if (key !== 'properties' && value && typeof value === 'object' && 'properties' in value) mappings++;
    return value;
  });
  expect(mappings).toBe(Object.keys(sections).length);
  return Object.fromEntries(Object.entries(sections).map(([name, node]) => [name, Object.keys(node.properties)]));
}

/** Every mapping key that appears anywhere in the example. */
function exampleKeys(): Set<string> {
  const doc = parseDocument(readFileSync(EXAMPLE, 'utf8'));
  const keys = new Set<string>();
  visit(doc, {
    Pair(_, pair) {
      if (isPair(pair) && isScalar(pair.key)) keys.add(String(pair.key.value));
    },
  });
  expect(isMap(doc.contents)).toBe(true);
  return keys;
}

test('the example shows every key the schema accepts', () => {
  const lists = schemaKeyLists();
  // The schema's sections, so a renamed list is noticed rather than silently skipped.
  expect(Object.keys(lists).sort()).toEqual(
    ['ADMIN_KEYS', 'ADMIN_MATCH_KEYS', 'AUDIT_KEYS', 'GRANT_KEYS', 'LIMITS_KEYS', 'LISTEN_KEYS', 'LOG_KEYS', 'MATCH_KEYS', 'OIDC_KEYS',
      'POOL_KEYS', 'PROXY_PROTOCOL_KEYS', 'REDIS_KEYS', 'ROLE_KEYS', 'SESSION_KEYS', 'STATE_KEYS', 'TLS_KEYS', 'TOP_KEYS', 'UPSTREAM_KEYS'],
  );
  const present = exampleKeys();
  // The redis: section is commented out in the example (with it tokengate needs a Redis): its keys are shown as comments.
  const commented = readFileSync(EXAMPLE, 'utf8').split('\n').map((l) => /^#\s+(?:# )?([A-Za-z]+):/.exec(l)?.[1]).filter((k): k is string => k !== undefined);
  for (const k of ['redis', ...lists.REDIS_KEYS]) if (commented.includes(k)) present.add(k);
  const missing = Object.entries(lists).flatMap(([list, keys]) => keys.filter((k) => !present.has(k)).map((k) => `${list}: ${k}`));
  expect(missing).toEqual([]);
});

test('the example loads, once its secrets exist', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-example-yaml-'));
  try {
    copyFileSync(EXAMPLE, join(dir, 'tokengate.yaml'));
    mkdirSync(join(dir, 'secrets'));
    writeFileSync(join(dir, 'secrets/app_rw'), 'rw-password\n', { mode: 0o600 });
    const config = loadConfig(join(dir, 'tokengate.yaml'), { APP_RO_PASSWORD: 'ro-password', BILLING_RO_PASSWORD: 'billing-password' });
    expect(Object.keys(config.upstreams)).toEqual(['app-pg', 'billing-mysql']);
    expect(config.grants.map((g) => g.name)).toEqual(['reporting-agents', 'etl-service', 'billing-oncall']);
    expect(config.upstreams['app-pg'].roles.writer.password.reveal()).toBe('rw-password');
    expect(config.oidc).toMatchObject({ issuer: 'https://example.okta.com/oauth2/default', requiredScopes: ['db.connect'], devIssuer: false });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the example validates against schema/tokengate.schema.json, which its first line names', () => {
  const text = readFileSync(EXAMPLE, 'utf8');
  expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=../schema/tokengate.schema.json');
  const committed = JSON.parse(readFileSync(join(ROOT, 'schema/tokengate.schema.json'), 'utf8'));
  const validate = new Ajv2020({ allErrors: true }).compile(committed);
  expect(validate(parse(text)) ? [] : validate.errors).toEqual([]);
});
