/**
 * BASELINE=<git ref>: another revision of tokengate, built in a temporary git worktree, so that
 * the same run measures the old and the new gateway in the same rounds. Only the gateway comes
 * from the ref: the harness, the servers and the generated config are this checkout's (the config
 * format is stable across revisions; bin/tokengate.js is the entry point at every one).
 */
import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { run, runOk, tail } from './proc';

export interface BaselineBuild {
  /** The ref as given (BASELINE=...). */
  ref: string;
  commit: string;
  /** The worktree: the gateway runs as `node <dir>/bin/tokengate.js start`. */
  dir: string;
  /** "main (09c0575 layout: one folder per concern ...)", for the report. */
  describe: string;
  /** This checkout's node_modules was linked in (identical lockfile) instead of running npm ci. */
  reusedModules: boolean;
  remove(): Promise<void>;
}

const git = (root: string, args: string[]) => runOk('git', ['-C', root, ...args], { timeoutMs: 120_000 });

/** Checks out `ref` into .tmp/bench/baseline/<commit>-<pid> and builds it there. */
export async function buildBaseline(root: string, ref: string, log: (line: string) => void): Promise<BaselineBuild> {
  const resolved = await run('git', ['-C', root, 'rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
  if (resolved.code !== 0) throw new Error(`BASELINE=${ref} is not a commit of this repository (git rev-parse found nothing); use a branch, tag or commit hash`);
  const commit = resolved.stdout.trim();
  const subject = (await git(root, ['log', '-1', '--format=%h %s', commit])).stdout.trim();
  const parent = path.join(root, '.tmp/bench/baseline');
  mkdirSync(parent, { recursive: true });
  const dir = path.join(parent, `${commit.slice(0, 12)}-${process.pid}`);
  log(`BASELINE=${ref}: checking out ${subject} into ${path.relative(root, dir)}`);
  await git(root, ['worktree', 'add', '--detach', dir, commit]);

  let removed = false;
  const modules = path.join(dir, 'node_modules');
  const remove = async (): Promise<void> => {
    if (removed) return;
    removed = true;
    // Unlink a shared node_modules first: removing the worktree must never reach this checkout's.
    if (isSymlink(modules)) unlinkSync(modules);
    const r = await run('git', ['-C', root, 'worktree', 'remove', '--force', dir]);
    if (r.code !== 0) {
      rmSync(dir, { recursive: true, force: true });
      await run('git', ['-C', root, 'worktree', 'prune']);
    }
  };
  try {
    const reusedModules = sameLockfile(root, dir);
    if (reusedModules) {
      log('BASELINE: same package-lock.json as this checkout: linking its node_modules, then npm run build');
      symlinkSync(path.join(root, 'node_modules'), modules, 'dir');
    } else {
      log('BASELINE: package-lock.json differs from this checkout\'s: npm ci (a few minutes)');
      await npm(dir, ['ci', '--no-audit', '--no-fund', '--ignore-scripts']);
    }
    await npm(dir, ['run', 'build']);
    if (!existsSync(path.join(dir, 'bin/tokengate.js'))) throw new Error(`BASELINE=${ref} (${subject}) has no bin/tokengate.js to start`);
    return { ref, commit, dir, describe: `${ref} (${subject})`, reusedModules, remove };
  } catch (err) {
    await remove();
    throw new Error(`BASELINE=${ref}: could not build it: ${(err as Error).message}`);
  }
}

function sameLockfile(root: string, dir: string): boolean {
  const mine = path.join(root, 'package-lock.json');
  const theirs = path.join(dir, 'package-lock.json');
  return existsSync(mine) && existsSync(theirs) && existsSync(path.join(root, 'node_modules'))
    && readFileSync(mine, 'utf8') === readFileSync(theirs, 'utf8');
}

async function npm(cwd: string, args: string[]): Promise<void> {
  const r = await run('npm', args, { cwd, timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`npm ${args.join(' ')} exited with ${r.code}: ${tail(r.stderr || r.stdout)}`);
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
