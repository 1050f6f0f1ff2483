import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ROOT } from './helpers';

/**
 * examples/systemd/tokengate.service as systemd reads it: `systemd-analyze verify` accepts it and
 * `systemd-analyze security` rates it. Verify checks that ExecStart's program exists, so it runs
 * on a copy whose ExecStart is this checkout's bin/tokengate.js instead of /usr/bin/tokengate.
 */

const UNIT = join(ROOT, 'examples', 'systemd', 'tokengate.service');
const ANALYZE = '/usr/bin/systemd-analyze';
const present = existsSync(ANALYZE);
if (!present) console.warn(`${ANALYZE} is absent (install the systemd package): the unit file checks are skipped`);
const maybe = present ? test : test.skip;

let dir: string;
let copy: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tokengate-lifetest-unit-'));
  copy = join(dir, 'tokengate.service');
  const text = readFileSync(UNIT, 'utf8');
  expect(text).toMatch(/^ExecStart=\/usr\/bin\/tokengate start --config \/etc\/tokengate\/tokengate\.yaml$/m);
  writeFileSync(copy, text.replace(/^ExecStart=\/usr\/bin\/tokengate /m, `ExecStart=${BIN} `));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

maybe('systemd-analyze verify passes without a warning', () => {
  const r = spawnSync(ANALYZE, ['verify', copy], { encoding: 'utf8' });
  expect({ status: r.status, stderr: r.stderr, stdout: r.stdout }).toEqual({ status: 0, stderr: '', stdout: '' });
});

maybe('systemd-analyze security rates the unit OK (exposure below 2.0)', () => {
  const out = execFileSync(ANALYZE, ['security', '--offline=true', '--no-pager', copy], { encoding: 'utf8' });
  const level = Number(/Overall exposure level for tokengate\.service: ([\d.]+)/.exec(out)?.[1]);
  expect(level).toBeLessThan(2.0);
});

test('the unit has what section 7 asks for', () => {
  const settings = readFileSync(UNIT, 'utf8').split('\n').filter((l) => /^[A-Z]/.test(l));
  expect(settings).toEqual(expect.arrayContaining([
    'Type=notify', 'NotifyAccess=all', 'ExecReload=/bin/kill -HUP $MAINPID', 'Restart=on-failure', 'DynamicUser=yes', 'StateDirectory=tokengate',
    'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'PrivateDevices=yes', 'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes', 'ProtectKernelLogs=yes', 'CapabilityBoundingSet=', 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
    'SystemCallFilter=@system-service',
  ]));
  expect(settings.some((l) => l.startsWith('LoadCredential='))).toBe(true);
  expect(settings.some((l) => l.startsWith('MemoryDenyWriteExecute'))).toBe(false);
});
