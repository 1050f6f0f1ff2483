/**
 * Decodes messages a client sends after startup. Query and Parse decoders accept a captured prefix
 * (the relay keeps only the first bytes of a big query for audit), so a missing terminator there
 * means "truncated", not "malformed".
 */
import { FrontendType } from './constants';
import { ProtocolError } from './errors';
import { readLenientText, strictUtf8Decode } from './text';

export { FrontendType } from './constants';

/** PasswordMessage ('p') body: the password as a cstring. The terminator must be the last byte. */
export function decodePasswordMessage(body: Buffer): string {
  const end = body.indexOf(0);
  if (end < 0) throw new ProtocolError('password message is missing its NUL terminator');
  if (end !== body.length - 1) {
    throw new ProtocolError(`password message has ${body.length - 1 - end} bytes after its NUL terminator; expected a single cstring`);
  }
  return strictUtf8Decode(body.subarray(0, end), 'password');
}

/** Query ('Q') body: the SQL text. A body without terminator is taken as a truncated prefix. */
export function decodeQuery(body: Buffer): string {
  return readLenientText(body, 0).value;
}

/**
 * Parse ('P') body: statement name, query text, parameter types (ignored). Tolerates a truncated
 * prefix: a cut statement name gives an empty query.
 */
export function decodeParse(body: Buffer): { statement: string; query: string } {
  const statement = readLenientText(body, 0);
  if (!statement.terminated) return { statement: statement.value, query: '' };
  return { statement: statement.value, query: readLenientText(body, statement.next).value };
}

/** Human name of a frontend message type byte, for audit and errors. */
export function frontendTypeName(type: number): string {
  for (const [name, value] of Object.entries(FrontendType)) if (value === type) return name;
  return 'Unknown';
}
