import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { giveTo, runOk } from '../proc';

export interface BenchCert {
  certFile: string;
  keyFile: string;
}

/**
 * One self-signed certificate for localhost/127.0.0.1, shared by PostgreSQL, pgbouncer and
 * tokengate for the TLS scenario. Owned by `postgres` with mode 0600 (PostgreSQL insists, and
 * pgbouncer reads it after dropping to that user); tokengate runs as root and reads it too.
 */
export async function makeBenchCert(dir: string): Promise<BenchCert> {
  const certFile = path.join(dir, 'bench.crt');
  const keyFile = path.join(dir, 'bench.key');
  const ext = path.join(dir, 'bench-san.cnf');
  writeFileSync(ext, '[req]\ndistinguished_name=dn\n[dn]\n[san]\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n');
  await runOk('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost',
    '-keyout', keyFile, '-out', certFile, '-config', ext, '-extensions', 'san']);
  chmodSync(keyFile, 0o600);
  giveTo('postgres', certFile, keyFile);
  return { certFile, keyFile };
}
