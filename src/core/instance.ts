import crypto from 'node:crypto';
import os from 'node:os';

/**
 * Which gateway process this is. Every process (a host's tokengate, or one worker of it) is an
 * instance: sessions, cancel keys and MySQL connection ids carry its 16-bit number, so an
 * instance that receives a CancelRequest or a KILL for a session it does not hold knows, without
 * a lookup, which instance to forward it to.
 */
export interface InstanceIdentity {
  /** Shown in GET /sessions (`instance`) and the logs: 4 hex digits by default. */
  id: string;
  /** 0..65535: the bits of cancel keys and connection ids that name this instance. */
  number: number;
  /** Unique to this process's run (the id plus random bits): what other instances address it by, so two instances given the same id by mistake still tell their messages and leases apart. */
  key: string;
  host: string;
  pid: number;
  startedAt: number;
}

export const INSTANCE_NUMBER_BITS = 16;

/** `id` as given (GatewayOptions.instanceId), or a random one. */
export function instanceIdentity(id: string | undefined, now: number): InstanceIdentity {
  const chosen = id ?? crypto.randomInt(0, 1 << INSTANCE_NUMBER_BITS).toString(16).padStart(4, '0');
  return { id: chosen, number: instanceNumber(chosen), key: `${chosen}.${crypto.randomBytes(4).toString('hex')}`, host: os.hostname(), pid: process.pid, startedAt: now };
}

/**
 * 4 hex digits are the number itself; any other id is hashed to 16 bits. Two instances with the
 * same number still work: a forwarded cancel reaches both and only the one holding the key acts.
 */
export function instanceNumber(id: string): number {
  if (/^[0-9a-f]{4}$/i.test(id)) return parseInt(id, 16);
  return crypto.createHash('sha256').update(id).digest().readUInt16BE(0);
}
