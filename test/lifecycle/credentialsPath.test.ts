import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load';
import { ConfigError } from '../../src/config/problems';

/** File paths that start with $CREDENTIALS_DIRECTORY (systemd LoadCredential=) in passwordFile, tls and admin.tokenFile. */

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tokengate-lifetest-creds-'));
  writeFileSync(join(dir, 'pg-reader'), 'lifetest-credential-password\n', { mode: 0o600 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const yaml = (passwordFile: string): string => `
listen: { postgres: 127.0.0.1:0 }
oidc: { issuer: https://example.okta.com/oauth2/default, audience: api://tokengate }
admin:
  tokenFile: \${CREDENTIALS_DIRECTORY}/admin-token
upstreams:
  app-pg:
    protocol: postgres
    host: 127.0.0.1
    databases: { app: app }
    roles:
      reader:
        user: reader
        passwordFile: ${passwordFile}
grants:
  - { name: everyone, match: { groups: [db-readers] }, upstream: app-pg, databases: [app], roles: [reader] }
`;

test.each(['${CREDENTIALS_DIRECTORY}/pg-reader', '$CREDENTIALS_DIRECTORY/pg-reader'])('%s reads the credential systemd put there', (path) => {
  const config = parseConfig(yaml(path), '<test>', { CREDENTIALS_DIRECTORY: dir }, '/etc/tokengate');
  expect(config.upstreams['app-pg'].roles.reader.password.reveal()).toBe('lifetest-credential-password');
  expect(config.admin.tokenFile).toBe(join(dir, 'admin-token'));
});

test('without CREDENTIALS_DIRECTORY the key says what is wrong', () => {
  let problems: Array<{ path: string; message: string }> = [];
  try {
    parseConfig(yaml('${CREDENTIALS_DIRECTORY}/pg-reader'), '<test>', {}, '/etc/tokengate');
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems = err.problems;
  }
  expect(problems).toEqual(expect.arrayContaining([
    expect.objectContaining({ path: 'upstreams.app-pg.roles.reader.passwordFile', message: expect.stringMatching(/names \$CREDENTIALS_DIRECTORY, which is not set: systemd sets it for a unit with LoadCredential=/) }),
    expect.objectContaining({ path: 'admin.tokenFile', message: expect.stringMatching(/which is not set/) }),
  ]));
});
