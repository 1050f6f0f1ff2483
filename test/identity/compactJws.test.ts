import fc from 'fast-check';
import { decodeCompactJws } from '../../src/identity/compactJws';
import { MAX_ACCESS_TOKEN_BYTES } from '../../src/identity/tokenSize';
import { TokenRejectedError } from '../../src/identity/types';

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

test('decodes header and payload of a compact JWS', () => {
  expect(decodeCompactJws(`${b64({ alg: 'RS256', kid: 'k' })}.${b64({ sub: 'a' })}.c2ln`)).toEqual({ header: { alg: 'RS256', kid: 'k' }, claims: { sub: 'a' } });
});

test('the size limit is checked before decoding', () => {
  const big = `${b64({ alg: 'RS256' })}.${'A'.repeat(MAX_ACCESS_TOKEN_BYTES)}.c2ln`;
  expect(() => decodeCompactJws(big)).toThrow(/too large for an access token \(at most 16384 bytes/);
  expect(() => decodeCompactJws(big)).toThrow(expect.objectContaining({ reason: 'token_too_large' }));
});

test('arbitrary input never crashes: it decodes or throws a malformed rejection without echoing itself', () => {
  const part = fc.oneof(fc.string(), fc.base64String().map((s) => s.replace(/=/g, '').replace(/\+/g, '-').replace(/\//g, '_')), fc.json().map((j) => Buffer.from(j).toString('base64url')));
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.array(part, { maxLength: 6 }).map((p) => p.join('.'))), (input) => {
      try {
        const d = decodeCompactJws(input);
        expect(typeof d.header).toBe('object');
        expect(typeof d.claims).toBe('object');
      } catch (err) {
        expect(err).toBeInstanceOf(TokenRejectedError);
        expect((err as TokenRejectedError).reason).toBe('malformed');
        if (input.length >= 12) expect((err as Error).message.includes(input)).toBe(false);
      }
    }),
    { numRuns: 2000 },
  );
});
