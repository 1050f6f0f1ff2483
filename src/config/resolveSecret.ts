import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Secret } from './secret';

/**
 * Turns a role's `password` / `passwordFile` into a Secret. Errors name the key and the
 * variable or file, never the value: the caller turns them into config problems.
 */

export class SecretError extends Error {}

/** `${NAME}`, alone (surrounding blanks allowed): the only accepted form of `password:`. */
export const ENV_REF = /^\s*\$\{([A-Za-z_][A-Za-z0-9_]*)\}\s*$/;
/** A password file larger than this is certainly the wrong file; refuse rather than read it all. */
const MAX_SECRET_FILE_BYTES = 64 * 1024;

/** The variable name in a "${VAR}" reference, or undefined when `text` is anything else. */
export function envReference(text: unknown): string | undefined {
  return typeof text === 'string' ? ENV_REF.exec(text)?.[1] : undefined;
}

export function secretFromEnv(name: string, env: NodeJS.ProcessEnv): Secret {
  const value = env[name];
  if (value === undefined) {
    throw new SecretError(`environment variable ${name} is not set; export it before starting tokengate, or use passwordFile`);
  }
  if (value === '') throw new SecretError(`environment variable ${name} is set but empty`);
  return new Secret(value, `env ${name}`);
}

/** `${CREDENTIALS_DIRECTORY}` (or `$CREDENTIALS_DIRECTORY`) at the start of a file path: where systemd puts the unit's LoadCredential= files. */
const CREDENTIALS_REF = /^\$(\{CREDENTIALS_DIRECTORY\}|CREDENTIALS_DIRECTORY(?![A-Za-z0-9_]))/;

/** Replaces a leading $CREDENTIALS_DIRECTORY in a file path by its value; throws a SecretError when it is not set. */
export function expandCredentialsDirectory(file: string, env: NodeJS.ProcessEnv): string {
  if (!CREDENTIALS_REF.test(file)) return file;
  const dir = env.CREDENTIALS_DIRECTORY;
  if (!dir) {
    throw new SecretError(`${file} names $CREDENTIALS_DIRECTORY, which is not set: systemd sets it for a unit with LoadCredential=; outside systemd, write the file's real path`);
  }
  return file.replace(CREDENTIALS_REF, () => dir);
}

/** Reads a password file (relative to `baseDir`), stripping trailing newlines. */
export function secretFromFile(file: string, baseDir: string): Secret {
  const path = isAbsolute(file) ? file : resolve(baseDir, file);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new SecretError(`cannot read password file ${path} (${code}); check that it exists and is readable by the tokengate user`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new SecretError(`password file ${path} is not a regular file`);
    if (st.size > MAX_SECRET_FILE_BYTES) {
      throw new SecretError(`password file ${path} is ${st.size} bytes; a password file holds only the password (max ${MAX_SECRET_FILE_BYTES} bytes)`);
    }
    const buf = Buffer.alloc(st.size);
    let read = 0;
    while (read < st.size) {
      const n = readSync(fd, buf, read, st.size - read, read);
      if (n === 0) break;
      read += n;
    }
    const value = buf.subarray(0, read).toString('utf8').replace(/[\r\n]+$/, '');
    if (value === '') throw new SecretError(`password file ${path} is empty`);
    return new Secret(value, `file ${path}`);
  } finally {
    closeSync(fd);
  }
}

/** The file path of a Secret read by secretFromFile, for permission checks in reports. */
export function secretFilePath(secret: Secret): string | undefined {
  return secret.source.startsWith('file ') ? secret.source.slice('file '.length) : undefined;
}
