import { InProcessCancelKeys, type CancelKeyStore } from './cancelKeys';
import { InProcessConnectionIds, type ConnectionIdStore } from './connectionIds';
import { InProcessConnectionLeases, type ConnectionLeases } from './connectionLeases';
import { InProcessRevocations, type RevocationStore } from './revocations';

/** The state that several gateway processes would have to share; one process keeps it in memory. */
export interface SharedState {
  revocations: RevocationStore;
  cancelKeys: CancelKeyStore;
  connectionIds: ConnectionIdStore;
  leases: ConnectionLeases;
}

export function inProcessState(): SharedState {
  return {
    revocations: new InProcessRevocations(),
    cancelKeys: new InProcessCancelKeys(),
    connectionIds: new InProcessConnectionIds(),
    leases: new InProcessConnectionLeases(),
  };
}

export type { CancelKey, CancelKeyStore } from './cancelKeys';
export type { ConnectionIdStore } from './connectionIds';
export { SharedStateUnavailableError } from './connectionLeases';
export type { ConnectionLeases, Lease, LeaseRequest, LeaseResult } from './connectionLeases';
export type { NewRevocation, RevocableToken, Revocation, RevocationStore, RevocationTarget } from './revocations';
