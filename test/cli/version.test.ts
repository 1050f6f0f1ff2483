/** `tokengate --version` / `-V`: the version in package.json, found relative to the running code. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { packageVersion } from '../../src/cli/version';
import { expectExit, runCli } from '../helpers/runCli';

const VERSION = (JSON.parse(readFileSync(resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

test.each([['--version'], ['-V']])('tokengate %s prints the package version', async (flag) => {
  const r = await runCli([flag], { cwd: tmpdir() });
  expectExit(r, 0);
  expect(r.stdout).toBe(`${VERSION}\n`);
  expect(r.stderr).toBe('');
});

test('the version is found from the installed layout (node_modules/tokengate/dist/src/cli), not from another package', () => {
  const root = mkdtempSync(join(tmpdir(), 'tg-cli-version-'));
  try {
    // An application that installed tokengate: its own package.json is above tokengate's.
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'someone-else', version: '9.9.9' }));
    const pkg = join(root, 'node_modules', 'tokengate');
    const cli = join(pkg, 'dist', 'src', 'cli');
    mkdirSync(cli, { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'tokengate', version: '1.2.3' }));
    expect(packageVersion(cli)).toBe('1.2.3');
    rmSync(join(pkg, 'package.json'));
    expect(() => packageVersion(cli)).toThrow(/cannot find tokengate's package.json above/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
