import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError, parseConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';

/** Values that must never appear in any message, report or serialization. */
export const RO_PASSWORD = 'ro-s3cret-Zq81!';
export const RW_PASSWORD = 'rw-s3cret-Kp27?';
export const MY_PASSWORD = 'my-s3cret-Xw55#';

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tokengate-config-'));
}

/** A temp dir holding secrets/app_rw (mode 600) for passwordFile tests. */
export function secretsDir(): string {
  const dir = tempDir();
  mkdirSync(join(dir, 'secrets'));
  writeFileSync(join(dir, 'secrets', 'app_rw'), `${RW_PASSWORD}\n`, { mode: 0o600 });
  return dir;
}

export const ENV: NodeJS.ProcessEnv = { APP_RO_PASSWORD: RO_PASSWORD, BILLING_RO_PASSWORD: MY_PASSWORD, MY_PASSWORD };

/** A small valid config (as a plain object) that tests mutate. */
export function baseDoc(): Record<string, any> {
  return {
    listen: { postgres: '127.0.0.1:6432', mysql: '127.0.0.1:6033' },
    oidc: { issuer: 'https://example.okta.com/oauth2/default', audience: 'api://tokengate' },
    upstreams: {
      'app-pg': {
        protocol: 'postgres',
        host: '127.0.0.1',
        databases: { app: 'app_production', analytics: 'analytics' },
        roles: {
          reader: { user: 'agent_ro', password: '${APP_RO_PASSWORD}' },
          writer: { user: 'agent_rw', password: '${APP_RO_PASSWORD}' },
        },
      },
    },
    grants: [{ name: 'readers', match: { groups: ['db-readers'] }, upstream: 'app-pg', databases: ['app'], roles: ['reader'] }],
  };
}

export function parseDoc(doc: unknown, env: NodeJS.ProcessEnv = ENV, baseDir?: string): Config {
  return parseConfig(stringify(doc), 'test.yaml', env, baseDir ?? tempDir());
}

/** Parses and expects a ConfigError; returns it. */
export function configError(doc: unknown, env: NodeJS.ProcessEnv = ENV, baseDir?: string): ConfigError {
  try {
    parseDoc(doc, env, baseDir);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError, but the config was accepted');
}

export function withDoc(mutate: (doc: Record<string, any>) => void): Record<string, any> {
  const doc = baseDoc();
  mutate(doc);
  return doc;
}
