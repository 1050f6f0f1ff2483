import { parameterStatus } from '../../protocols/postgres/backend';

/**
 * ParameterStatus messages by (name, value): every greeting sends a dozen, nearly always the
 * same ones, and encoding them anew was a few percent of the gateway's CPU per login.
 */
const cache = new Map<string, Buffer>();
const MAX_ENTRIES = 1024;

export function parameterStatusMessage(name: string, value: string): Buffer {
  const key = `${name}\0${value}`;
  let message = cache.get(key);
  if (!message) {
    message = parameterStatus(name, value);
    if (cache.size >= MAX_ENTRIES) cache.clear();
    cache.set(key, message);
  }
  return message;
}
