import {
  authenticationCleartextPassword,
  authenticationOk,
  backendKeyData,
  decodeAuthentication,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeErrorFields,
  decodeParameterStatus,
  decodeParse,
  decodePasswordMessage,
  decodeQuery,
  decodeReadyForQuery,
  decodeStartupPacket,
  errorResponse,
  MAX_STARTUP_PARAMETERS,
  noticeResponse,
  parameterStatus,
  ProtocolError,
  SqlState,
} from '../../../protocols/postgres';

const body = (...parts: (string | number[] | Buffer)[]): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));
const code = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

describe('decodeStartupPacket', () => {
  test('SSLRequest, GSSENCRequest', () => {
    expect(decodeStartupPacket(code(80877103))).toEqual({ kind: 'ssl' });
    expect(decodeStartupPacket(code(80877104))).toEqual({ kind: 'gssenc' });
    expect(() => decodeStartupPacket(body(code(80877103), [0]))).toThrow(ProtocolError);
  });

  test('CancelRequest with 4-byte and PG18 32-byte keys; bad key lengths refused', () => {
    const pid = Buffer.from([0, 0, 0x12, 0x34]);
    expect(decodeStartupPacket(body(code(80877102), pid, [1, 2, 3, 4]))).toEqual({ kind: 'cancel', processId: 0x1234, secretKey: Buffer.from([1, 2, 3, 4]) });
    const long = Buffer.alloc(32, 9);
    expect(decodeStartupPacket(body(code(80877102), pid, long))).toMatchObject({ kind: 'cancel', secretKey: long });
    expect(() => decodeStartupPacket(body(code(80877102), pid, [1, 2, 3]))).toThrow(/16 to 268/);
    expect(() => decodeStartupPacket(body(code(80877102), pid, Buffer.alloc(257)))).toThrow(ProtocolError);
  });

  test('protocol 2.0 and unknown codes are unsupported, not errors', () => {
    expect(decodeStartupPacket(body(code(0x20000), 'user\0x\0\0'))).toEqual({ kind: 'unsupported', code: 0x20000 });
    expect(decodeStartupPacket(code(1234))).toEqual({ kind: 'unsupported', code: 1234 });
  });

  test('a leading U+FEFF in a name or value is kept, as PostgreSQL keeps it', () => {
    // Found by the fuzz test (seed 1627270280): TextDecoder drops a leading BOM unless told not to.
    expect(decodeStartupPacket(body(code(0x30000), 'user\0\ufeffreader\0\ufeffk\0\ufeff\0\0'))).toEqual({
      kind: 'startup',
      major: 3,
      minor: 0,
      parameters: { user: '\ufeffreader', '\ufeffk': '\ufeff' },
      protocolOptions: {},
    });
    expect(decodeCommandComplete(body('\ufeffSELECT 1', [0]))).toBe('\ufeffSELECT 1');
  });

  test('newer minor versions and _pq_ options are reported for negotiation', () => {
    expect(decodeStartupPacket(body(code(0x3270f), 'user\0a\0_pq_.x\0y\0\0'))).toEqual({
      kind: 'startup',
      major: 3,
      minor: 9999,
      parameters: { user: 'a' },
      protocolOptions: { '_pq_.x': 'y' },
    });
  });

  test('malformed parameter lists', () => {
    const cases: [Buffer, RegExp][] = [
      [body(code(196608)), /final NUL terminator/],
      [body(code(196608), 'user\0alice\0'), /final NUL terminator/],
      [body(code(196608), 'user'), /missing its NUL terminator/],
      [body(code(196608), 'user\0'), /has no value/],
      [body(code(196608), 'user\0alice'), /missing its NUL terminator/],
      [body(code(196608), 'user\0alice\0\0junk'), /after the terminator/],
      [body(code(196608), 'user\0a\0user\0b\0\0'), /twice/],
      [body(code(196608), 'user\0', [0xff, 0xfe], '\0\0'), /not valid UTF-8/],
      [body(code(196608), ...Array.from({ length: MAX_STARTUP_PARAMETERS + 1 }, (_, i) => `k${i}\0v\0`), '\0'), /more than 64 parameters/],
      [Buffer.from([0, 3]), /at least 8/],
    ];
    for (const [b, msg] of cases) {
      expect(() => decodeStartupPacket(b)).toThrow(msg);
      try {
        decodeStartupPacket(b);
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolError);
        expect((e as ProtocolError).sqlState).toBe(SqlState.PROTOCOL_VIOLATION);
      }
    }
  });

  test('a parameter named __proto__ stays data', () => {
    const p = decodeStartupPacket(body(code(196608), '__proto__\0x\0user\0u\0\0'));
    expect(p.kind === 'startup' && p.parameters['__proto__']).toBe('x');
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});

describe('frontend decoders', () => {
  test('PasswordMessage', () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.' + 'a'.repeat(1200) + '.sig';
    expect(decodePasswordMessage(body(jwt, [0]))).toBe(jwt);
    expect(decodePasswordMessage(body([0]))).toBe('');
    expect(() => decodePasswordMessage(body('secret'))).toThrow(/NUL terminator/);
    expect(() => decodePasswordMessage(body('a\0b\0'))).toThrow(/after its NUL/);
    expect(() => decodePasswordMessage(body([0xc3, 0x28, 0]))).toThrow(ProtocolError);
  });

  test('PasswordMessage errors never echo the password', () => {
    try {
      decodePasswordMessage(body('hunter2-secret\0extra'));
      throw new Error('should have thrown');
    } catch (e) {
      expect((e as Error).message).not.toContain('hunter2');
    }
  });

  test('Query tolerates a truncated prefix, even inside a multi-byte character', () => {
    expect(decodeQuery(body('select 1\0'))).toBe('select 1');
    expect(decodeQuery(body('select 1'))).toBe('select 1');
    const full = Buffer.from("select 'héllo €'", 'utf8');
    for (let i = 0; i <= full.length; i++) {
      const text = decodeQuery(full.subarray(0, i));
      expect(text).not.toContain('\uFFFD');
      expect(full.toString('utf8').startsWith(text)).toBe(true);
    }
  });

  test('Parse tolerates truncation', () => {
    const p = body('stmt1\0select $1\0', [0, 1, 0, 0, 0, 23]);
    expect(decodeParse(p)).toEqual({ statement: 'stmt1', query: 'select $1' });
    expect(decodeParse(p.subarray(0, 10))).toEqual({ statement: 'stmt1', query: 'sele' });
    expect(decodeParse(p.subarray(0, 3))).toEqual({ statement: 'stm', query: '' });
    expect(decodeParse(Buffer.alloc(0))).toEqual({ statement: '', query: '' });
  });
});

describe('backend encoders and decoders', () => {
  test('authentication requests', () => {
    expect(authenticationOk().toString('hex')).toBe('520000000800000000');
    expect(authenticationCleartextPassword().toString('hex')).toBe('520000000800000003');
    expect(decodeAuthentication(authenticationCleartextPassword().subarray(5)).code).toBe(3);
    expect(() => decodeAuthentication(Buffer.alloc(2))).toThrow(ProtocolError);
  });

  test('ErrorResponse writes S, V, C, M, D, H and decodes back', () => {
    const f = { severity: 'FATAL', code: SqlState.INVALID_PASSWORD, message: 'token expired', detail: 'exp was 5 minutes ago', hint: 'fetch a new token' };
    const e = errorResponse(f);
    expect(e[0]).toBe(0x45);
    expect(e.subarray(5).toString('latin1')).toBe('SFATAL\0VFATAL\0C28P01\0Mtoken expired\0Dexp was 5 minutes ago\0Hfetch a new token\0\0');
    expect(decodeErrorFields(e.subarray(5))).toEqual({ ...f, severityNonLocalized: 'FATAL' });
    expect(noticeResponse({ severity: 'NOTICE', code: '00000', message: 'hi' })[0]).toBe(0x4e);
  });

  test('a NUL inside a string cannot break framing', () => {
    const e = errorResponse({ severity: 'ERROR', code: 'XX000', message: 'a\0b' });
    expect(decodeErrorFields(e.subarray(5)).message).toBe('a\uFFFDb');
    expect(decodeParameterStatus(parameterStatus('x\0', 'y').subarray(5))).toEqual({ name: 'x\uFFFD', value: 'y' });
  });

  test('malformed backend bodies', () => {
    expect(() => decodeErrorFields(body('SERROR\0'))).toThrow(/final NUL/);
    expect(() => decodeErrorFields(body('SERROR\0\0'))).toThrow(/required fields/);
    expect(() => decodeErrorFields(body('SERROR'))).toThrow(ProtocolError);
    expect(() => decodeReadyForQuery(body('X'))).toThrow(/I, T or E/);
    expect(() => decodeReadyForQuery(body('II'))).toThrow(ProtocolError);
    expect(() => decodeCommandComplete(body('SELECT 1'))).toThrow(ProtocolError);
    expect(() => decodeParameterStatus(body('a\0b'))).toThrow(ProtocolError);
    expect(() => decodeBackendKeyData(Buffer.alloc(7))).toThrow(ProtocolError);
    expect(decodeErrorFields(body('SERROR\0Cxx\0Mm\0Zzz\0\0'))).toMatchObject({ field_Z: 'zz' });
  });

  test('BackendKeyData bounds', () => {
    expect(decodeBackendKeyData(backendKeyData(-5, Buffer.alloc(256, 1)).subarray(5)).processId).toBe(-5);
    expect(() => backendKeyData(1, Buffer.alloc(3))).toThrow(RangeError);
    expect(() => backendKeyData(2 ** 31, Buffer.alloc(4))).toThrow(RangeError);
  });
});
