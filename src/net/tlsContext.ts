import fs from 'node:fs';
import tls from 'node:tls';
import type { TlsConfig } from '../config/schema';

/** Client TLS: 1.2 and 1.3 only. Tokens are bearer credentials; older versions have known downgrade and CBC attacks. */
export const CLIENT_TLS_MIN_VERSION = 'TLSv1.2';

/** TLS 1.3's standard suites, all AEAD. Named here because Node turns TLS 1.3 off when `ciphers` lists none. */
export const CLIENT_TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

/**
 * TLS 1.2 cipher suites: forward-secret key exchange (ECDHE, DHE) with an AEAD cipher only, as
 * Mozilla's "intermediate" profile (no CBC, no RSA key exchange, no SHA-1 MACs).
 * docs/security.md lists the same.
 */
export const CLIENT_TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'DHE-RSA-AES128-GCM-SHA256',
  'DHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-CHACHA20-POLY1305',
];

/** The server-side TLS context for client connections, or undefined when no certificate is configured. */
export function loadServerTlsContext(config: TlsConfig): tls.SecureContext | undefined {
  if (!config.certFile || !config.keyFile) return undefined;
  return tls.createSecureContext({
    cert: fs.readFileSync(config.certFile),
    key: fs.readFileSync(config.keyFile),
    minVersion: CLIENT_TLS_MIN_VERSION,
    ciphers: [...CLIENT_TLS13_SUITES, ...CLIENT_TLS12_CIPHERS].join(':'),
  });
}
