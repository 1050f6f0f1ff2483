import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers';

/**
 * Installable as a service: `npm pack` makes a tarball (dist/ built fresh by prepack + prepare)
 * that `npm install -g` installs with a working `tokengate` on PATH, here under a temporary
 * prefix. Dependencies come from npm's cache (or the registry when they are not cached).
 */

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tokengate-lifetest-pack-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('npm pack, then npm install -g of the tarball, gives a tokengate that runs', () => {
  execFileSync('npm', ['pack', '--pack-destination', dir], { cwd: ROOT, stdio: 'pipe' });
  const [tarball] = readdirSync(dir).filter((f) => /^tokengate-.*\.tgz$/.test(f));
  expect(tarball).toBeDefined();
  const listing = execFileSync('tar', ['-tzf', join(dir, tarball)], { encoding: 'utf8' }).split('\n');
  expect(listing).toEqual(expect.arrayContaining(['package/bin/tokengate.js', 'package/dist/src/cli/main.js', 'package/examples/systemd/tokengate.service', 'package/examples/logrotate/tokengate']));
  expect(listing.some((f) => f.startsWith('package/test/') || f.startsWith('package/src/'))).toBe(false);

  const prefix = join(dir, 'prefix');
  execFileSync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(dir, tarball)], { cwd: dir, stdio: 'pipe' });
  const bin = join(prefix, 'bin', 'tokengate');
  expect(existsSync(bin)).toBe(true);
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  expect(execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim()).toBe(version);
  expect(execFileSync(bin, ['--help'], { encoding: 'utf8' })).toMatch(/start \[options\]\s+run the gateway/);
  // A command that loads the config code and its dependencies.
  expect(JSON.parse(execFileSync(bin, ['schema'], { encoding: 'utf8' })).title).toBeDefined();
}, 120_000);
