import fs from 'node:fs';
import tls from 'node:tls';
import type { TlsConfig } from '../config/schema';

/** The server-side TLS context for client connections, or undefined when no certificate is configured. */
export function loadServerTlsContext(config: TlsConfig): tls.SecureContext | undefined {
  if (!config.certFile || !config.keyFile) return undefined;
  return tls.createSecureContext({
    cert: fs.readFileSync(config.certFile),
    key: fs.readFileSync(config.keyFile),
    minVersion: 'TLSv1.2',
  });
}
