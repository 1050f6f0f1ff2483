/** Null-terminated string helpers shared by the decoders and encoders. */
import { ProtocolError } from './errors';

// ignoreBOM: a leading U+FEFF is text, as PostgreSQL sees it; TextDecoder would otherwise drop it.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Index of the NUL ending the cstring at `offset`, or -1 when the buffer ends first. */
export function cstringEnd(buf: Buffer, offset: number): number {
  return buf.indexOf(0, offset);
}

/** Decodes bytes as UTF-8, refusing invalid sequences (PostgreSQL validates startup text the same way). */
export function strictUtf8Decode(bytes: Buffer, what: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new ProtocolError(`${what} is not valid UTF-8; send UTF-8 text`);
  }
}

/**
 * Reads a cstring that must be terminated, strictly UTF-8. Returns the value and the offset after
 * the terminator.
 */
export function readCString(buf: Buffer, offset: number, what: string): { value: string; next: number } {
  const end = cstringEnd(buf, offset);
  if (end < 0) throw new ProtocolError(`${what} is missing its NUL terminator`);
  return { value: strictUtf8Decode(buf.subarray(offset, end), what), next: end + 1 };
}

/**
 * Lenient decode for audit text that may be a truncated prefix: stops at the first NUL if any,
 * drops an incomplete multi-byte character at a cut end, replaces invalid bytes with U+FFFD.
 */
export function readLenientText(buf: Buffer, offset: number): { value: string; next: number; terminated: boolean } {
  const end = cstringEnd(buf, offset);
  if (end >= 0) return { value: buf.toString('utf8', offset, end), next: end + 1, terminated: true };
  return { value: buf.toString('utf8', offset, completeUtf8End(buf, offset)), next: buf.length, terminated: false };
}

/** End offset that excludes a UTF-8 sequence cut off by truncation at the end of `buf`. */
function completeUtf8End(buf: Buffer, start: number): number {
  const end = buf.length;
  // Walk back over at most 3 continuation bytes to the lead byte of the last character.
  let i = end - 1;
  let continuation = 0;
  while (i >= start && continuation < 3 && (buf[i] & 0xc0) === 0x80) {
    i--;
    continuation++;
  }
  if (i < start) return end;
  const lead = buf[i];
  const needed = lead >= 0xf0 && lead < 0xf8 ? 3 : lead >= 0xe0 ? 2 : lead >= 0xc0 ? 1 : 0;
  if (lead < 0xc0) return end; // ASCII or stray continuation: nothing cut
  return continuation < needed ? i : end;
}

/** Bytes of `s` as a cstring. A NUL inside `s` would end the string early on the wire, so it is replaced by U+FFFD. */
export function cstringBytes(s: string): Buffer {
  const clean = s.includes('\0') ? s.replace(/\0/g, '\uFFFD') : s;
  const bytes = Buffer.allocUnsafe(Buffer.byteLength(clean) + 1);
  const n = bytes.write(clean, 0, 'utf8');
  bytes[n] = 0;
  return bytes;
}

/** A client-supplied name quoted for an error message: escaped, and cut to keep errors short. */
export function quoteForError(s: string, max = 64): string {
  const cut = s.length > max ? `${s.slice(0, max)}...` : s;
  return JSON.stringify(cut);
}
