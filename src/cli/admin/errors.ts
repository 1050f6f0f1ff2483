/**
 * Exit statuses of the admin commands (also in their --help and docs/operations.md):
 * 0 done; 1 the admin API refused or failed the request; 2 a usage or settings error (nothing
 * was sent); 3 the admin API could not be reached (connection refused, DNS, timeout, TLS).
 */
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;

export const EXIT_CODES_HELP = `
Exit status: 0 done; 1 the admin API refused or failed the request (its message is printed);
2 usage or settings error (no admin URL or token, a bad option); 3 the admin API could not be
reached (not running, wrong address, timeout).`;

/** Something to print to stderr and exit with `exitCode`. */
export class AdminCliError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = 'AdminCliError';
  }
}

/** The command line or the settings are unusable; nothing was sent. */
export class AdminUsageError extends AdminCliError {
  constructor(message: string) {
    super(message, EXIT_USAGE);
  }
}

/** The admin API answered with an error status. */
export class AdminRefusedError extends AdminCliError {
  constructor(message: string, readonly status: number, readonly body: unknown) {
    super(message, EXIT_REFUSED);
  }
}

/** No answer: connection refused, DNS, TLS, or the request timeout. */
export class AdminUnreachableError extends AdminCliError {
  constructor(message: string) {
    super(message, EXIT_UNREACHABLE);
  }
}
