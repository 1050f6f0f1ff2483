import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { AdminConfig } from '../config/schema';
import { identityFields, type IdentityFields } from '../audit/events';
import type { TokenVerification } from '../core/admission';
import type { RevocationStore } from '../core/state/revocations';
import { grantMatches } from '../grants/match';
import { TokenRejectedError } from '../identity/types';
import { log } from '../log';

/**
 * Who may call the admin API: the bearer in admin.tokenFile (automation, the CLI; caller
 * "admin"), or an access token from the configured issuer that verifies and matches admin.match
 * (operators with their own identity; caller = the token's sub). A refusal says nothing about
 * what was wrong with the bearer.
 */

export type AuthOutcome =
  | { ok: true; caller: string; identity: Readonly<IdentityFields> }
  | { ok: false; status: 401 | 403 | 503; error: string; caller?: string; identity?: Readonly<IdentityFields> };

export const UNAUTHORIZED = 'unauthorized';
export const NOT_CONFIGURED =
  'the admin API has no credentials configured: set admin.tokenFile (a file holding a bearer token, for automation and the tokengate CLI) ' +
  'and/or admin.match (operators use their own access token from the issuer, e.g. match: { groups: [db-admins] }), then reload';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export interface AdminAuthDeps {
  admin: () => AdminConfig;
  verifier: () => TokenVerification;
  revocations: RevocationStore;
  now: () => number;
}

export class AdminAuth {
  /** The token file's bearer, kept as its digest only. */
  #fileDigest?: Buffer;

  constructor(private readonly deps: AdminAuthDeps) {
    // At start, a readable file is among the config warnings start prints (configWarnings).
    this.refresh(false);
  }

  /** Reads admin.tokenFile again (at start, when the config changes and on every reload). */
  refresh(warnIfReadable = true): void {
    const file = this.deps.admin().tokenFile;
    this.#fileDigest = undefined;
    if (file === undefined) return;
    let token: string;
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      log.error(`cannot read admin.tokenFile ${file} (${e.code ?? e.message}); the admin API refuses the token-file bearer until the file is readable by the tokengate user and the config is reloaded`);
      return;
    }
    if (token.length === 0) {
      log.error(`admin.tokenFile ${file} is empty; the admin API refuses the token-file bearer until it holds a token (e.g. openssl rand -hex 32) and the config is reloaded`);
      return;
    }
    this.#fileDigest = digest(token);
    const mode = statSync(file).mode & 0o777;
    if (warnIfReadable && mode & 0o077) log.warn(`admin.tokenFile ${file} can be read by other users (mode 0${mode.toString(8)}); chmod 600 it`);
  }

  async authenticate(authorization: string | undefined): Promise<AuthOutcome> {
    const admin = this.deps.admin();
    if (admin.tokenFile === undefined && admin.match === undefined) return { ok: false, status: 403, error: NOT_CONFIGURED };
    const bearer = /^Bearer +(\S+) *$/i.exec(authorization ?? '')?.[1];
    if (bearer === undefined) return { ok: false, status: 401, error: UNAUTHORIZED };
    if (this.#fileDigest && timingSafeEqual(digest(bearer), this.#fileDigest)) return { ok: true, caller: 'admin', identity: {} };
    if (admin.match === undefined) return { ok: false, status: 401, error: UNAUTHORIZED };
    let who;
    try {
      who = await this.deps.verifier().verify(bearer);
    } catch (err) {
      if (err instanceof TokenRejectedError && err.reason === 'idp_unavailable') {
        return { ok: false, status: 503, error: 'cannot verify operator tokens now: the issuer\'s signing keys cannot be fetched; retry shortly, or use the admin.tokenFile bearer' };
      }
      if (err instanceof TokenRejectedError) return { ok: false, status: 401, error: UNAUTHORIZED };
      throw err;
    }
    const identity = identityFields(who);
    // A revoked operator token (by sub, client or jti) no more opens the admin API than a database.
    if (this.deps.revocations.blocking(who, this.deps.now())) return { ok: false, status: 401, error: UNAUTHORIZED, caller: who.sub, identity };
    if (!grantMatches(admin.match, who)) {
      return { ok: false, status: 403, error: 'forbidden: this identity does not match admin.match', caller: who.sub, identity };
    }
    return { ok: true, caller: who.sub, identity };
  }
}
