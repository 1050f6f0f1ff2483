import { log } from '../log';

/**
 * Announced when no upstream could be asked yet. Drivers switch quirks on the version string
 * (mysql2 on /mariadb/i), so it says MariaDB like the servers tokengate is tested with; the
 * "5.5.5-" prefix is what MariaDB itself sends for old-client compatibility.
 */
export const FALLBACK_SERVER_VERSION = '5.5.5-10.11.0-MariaDB-tokengate';
/** Upstream version strings are echoed only if they look like one (bounded, printable). */
const VERSION_PATTERN = /^[\x20-\x7e]{1,100}$/;

/**
 * The server version the MySQL listener greets clients with: the real upstream's, probed
 * once and cached. Until a probe succeeds the fallback is used and the probe is retried in
 * the background, at most once per `retryMs`.
 */
export class MysqlServerVersion {
  private known: string | undefined;
  private lastAttempt = 0;
  private inFlight: Promise<void> | undefined;

  constructor(private readonly probe: (() => Promise<string>) | undefined, private readonly retryMs = 30_000) {}

  /** The version to announce now (never waits). */
  get current(): string {
    if (this.known) return this.known;
    if (this.probe && !this.inFlight && Date.now() - this.lastAttempt >= this.retryMs) void this.refresh();
    return FALLBACK_SERVER_VERSION;
  }

  /** Probe the upstream now; failures are logged and leave the fallback in place. */
  refresh(): Promise<void> {
    if (!this.probe) return Promise.resolve();
    if (this.inFlight) return this.inFlight;
    this.lastAttempt = Date.now();
    this.inFlight = this.probe()
      .then((v) => {
        if (VERSION_PATTERN.test(v)) this.known = v;
        else log.warn(`the MySQL upstream announced an unusable server version; greeting clients with "${FALLBACK_SERVER_VERSION}"`);
      })
      .catch((err: Error) => {
        log.warn(`could not read the MySQL upstream's server version (${err.message}); greeting clients with "${FALLBACK_SERVER_VERSION}" until it answers`);
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }
}
