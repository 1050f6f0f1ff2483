import { randomBytes } from 'node:crypto';
import type { DevClient } from '../devIssuer';

/**
 * The demo's two service apps, shaped like Okta client-credentials apps: one reads, one writes.
 * Their secrets are made fresh at every start and live only in memory and the 0600 state file.
 */
export interface DemoClient extends DevClient {
  clientSecret: string;
  /** The gateway role the client's grant gives it (printed in the examples). */
  role: 'reader' | 'writer';
}

export const DEMO_AUDIENCE = 'api://tokengate';
export const DEMO_SCOPE = 'db.connect';

export function demoClients(): DemoClient[] {
  const secret = (): string => `dev-${randomBytes(18).toString('base64url')}`;
  return [
    { clientId: 'svc-reporting', clientSecret: secret(), groups: ['db-readers'], scopes: [DEMO_SCOPE], role: 'reader' },
    { clientId: 'svc-billing', clientSecret: secret(), groups: ['db-writers'], scopes: [DEMO_SCOPE], role: 'writer' },
  ];
}
