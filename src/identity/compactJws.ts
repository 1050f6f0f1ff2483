import { MAX_ACCESS_TOKEN_BYTES, tokenTooLargeMessage } from './tokenSize';
import { TokenRejectedError } from './types';

export interface DecodedJws {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function malformed(what: string): TokenRejectedError {
  return new TokenRejectedError(
    'malformed',
    `the token is not a usable access token: ${what}. Use a JWT access token from your issuer (three base64url parts separated by dots) as it is`,
  );
}

function decodeJsonPart(part: string, name: string): Record<string, unknown> {
  if (part === '' || !BASE64URL.test(part)) throw malformed(`the ${name} is not base64url`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw malformed(`the ${name} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(`the ${name} is not a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * Splits and decodes a compact JWS without verifying it. Pure and bounded: the size is
 * checked before any decoding. Throws TokenRejectedError('malformed') with a message that
 * never repeats the input.
 */
export function decodeCompactJws(token: string): DecodedJws {
  if (typeof token !== 'string' || token.length === 0) throw malformed('it is empty');
  if (token.length > MAX_ACCESS_TOKEN_BYTES) throw new TokenRejectedError('token_too_large', tokenTooLargeMessage(Buffer.byteLength(token)));
  // An Authorization header pasted whole: the most common copy-and-paste slip.
  if (/^bearer\s/i.test(token)) throw malformed('it starts with "Bearer ", the HTTP header\'s prefix; drop that word and send only the token after it');
  const parts = token.split('.');
  if (parts.length === 5) {
    throw malformed('it is an encrypted token (JWE); the gateway needs a signed access token (JWS), so disable access-token encryption for this audience');
  }
  if (parts.length !== 3) throw malformed(`it has ${parts.length} dot-separated parts instead of 3`);
  const header = decodeJsonPart(parts[0], 'header');
  const claims = decodeJsonPart(parts[1], 'payload');
  // An empty signature is structurally fine here: it is how alg "none" looks, and the
  // algorithm check then gives the precise reason.
  if (!BASE64URL.test(parts[2])) throw malformed('the signature part is not base64url');
  return { header, claims };
}
