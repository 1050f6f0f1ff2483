/**
 * Golden vectors captured from real psql 15, node-postgres, psycopg2 and PostgreSQL 15 with
 * test/tools/capture-postgres.ts: decode them, and re-encode what the gateway emits itself.
 */
import {
  authenticationOk,
  BackendType,
  backendKeyData,
  decodeAuthentication,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeErrorFields,
  decodeNegotiateProtocolVersion,
  decodeParameterStatus,
  decodeParse,
  decodeQuery,
  decodeReadyForQuery,
  decodeStartupPacket,
  FrontendType,
  negotiateProtocolVersion,
  parameterStatus,
  readyForQuery,
  StartupPacket,
  TransactionStatus,
} from '../../../protocols/postgres';
import { frameChunks, GOLDEN_STREAMS, goldenBytes, loadHex, referenceSplit } from './golden';

const chr = (s: string): number => s.charCodeAt(0);

function clientFrames(file: string) {
  return frameChunks('client', [loadHex(file)]).frames;
}
function serverMessages(file: string, skip = 0) {
  return referenceSplit('server', loadHex(file).subarray(skip));
}
function startupOf(file: string): StartupPacket {
  return decodeStartupPacket(clientFrames(file)[0].body);
}

test('golden directory holds the expected captures', () => {
  const files = GOLDEN_STREAMS.map((g) => g.file);
  for (const base of ['psql15-session', 'psql15-sslprefer', 'psql15-cancel', 'psql15-cancel-2', 'node-postgres-extended', 'psycopg2-startup', 'raw-negotiate-3.2']) {
    expect(files).toContain(`${base}.client.hex`);
    expect(files).toContain(`${base}.server.hex`);
  }
});

describe('client side', () => {
  test('psql 15 StartupMessage with application_name', () => {
    expect(startupOf('psql15-session.client.hex')).toEqual({
      kind: 'startup',
      major: 3,
      minor: 0,
      parameters: { user: 'postgres', database: 'test', application_name: 'tokengate-golden' },
      protocolOptions: {},
    });
  });

  test('psql 15 simple queries and Terminate', () => {
    const frames = clientFrames('psql15-session.client.hex');
    expect(frames.map((f) => f.type)).toEqual([0, FrontendType.Query, FrontendType.Query, FrontendType.Query, FrontendType.Terminate]);
    expect(frames.slice(1, 4).map((f) => decodeQuery(f.body))).toEqual([
      'select 1/0',
      "do $$ begin raise notice 'golden notice'; end $$",
      'select 1',
    ]);
    expect(frames[4].bodyLength).toBe(0);
  });

  test('psql 15 sslmode=prefer sends SSLRequest, then StartupMessage after the N', () => {
    const bytes = loadHex('psql15-sslprefer.client.hex');
    expect(bytes.subarray(0, 8).toString('hex')).toBe('0000000804d2162f');
    const frames = clientFrames('psql15-sslprefer.client.hex');
    expect(decodeStartupPacket(frames[0].body)).toEqual({ kind: 'ssl' });
    const startup = decodeStartupPacket(frames[1].body);
    expect(startup).toMatchObject({ kind: 'startup', major: 3, minor: 0, parameters: { user: 'postgres', database: 'test', application_name: 'psql' } });
    expect(loadHex('psql15-sslprefer.server.hex')[0]).toBe(chr('N'));
  });

  test('node-postgres StartupMessage (client_encoding=UTF8) and extended query', () => {
    const frames = clientFrames('node-postgres-extended.client.hex');
    expect(decodeStartupPacket(frames[0].body)).toEqual({
      kind: 'startup',
      major: 3,
      minor: 0,
      parameters: { user: 'postgres', database: 'test', client_encoding: 'UTF8' },
      protocolOptions: {},
    });
    expect(frames.slice(1).map((f) => String.fromCharCode(f.type)).join('')).toBe('PBDESX');
    expect(decodeParse(frames[1].body)).toEqual({ statement: '', query: 'select $1::int as n' });
  });

  test('psycopg2 StartupMessage sends only user and database', () => {
    expect(startupOf('psycopg2-startup.client.hex')).toEqual({
      kind: 'startup',
      major: 3,
      minor: 0,
      parameters: { user: 'postgres', database: 'test' },
      protocolOptions: {},
    });
    const frames = clientFrames('psycopg2-startup.client.hex');
    expect(frames.slice(1, 3).map((f) => decodeQuery(f.body))).toEqual(['BEGIN', 'select 1']);
  });

  test('psql CancelRequest carries the BackendKeyData of the session it cancels', () => {
    const cancel = startupOf('psql15-cancel-2.client.hex');
    const key = serverMessages('psql15-cancel.server.hex').find((m) => m.type === BackendType.BackendKeyData)!;
    const { processId, secretKey } = decodeBackendKeyData(key.body);
    expect(cancel).toEqual({ kind: 'cancel', processId, secretKey });
    expect(loadHex('psql15-cancel-2.server.hex').length).toBe(0); // the server just closes
    const error = serverMessages('psql15-cancel.server.hex').find((m) => m.type === BackendType.ErrorResponse)!;
    expect(decodeErrorFields(error.body)).toMatchObject({ severity: 'ERROR', code: '57014', message: 'canceling statement due to user request' });
  });

  test('hand-written 3.2 StartupMessage separates _pq_ options', () => {
    expect(startupOf('raw-negotiate-3.2.client.hex')).toEqual({
      kind: 'startup',
      major: 3,
      minor: 2,
      parameters: { user: 'postgres', database: 'test' },
      protocolOptions: { '_pq_.tokengate_golden': '1' },
    });
  });
});

describe('server side', () => {
  const welcome = serverMessages('psql15-session.server.hex');

  test('welcome sequence: AuthenticationOk, ParameterStatus*, BackendKeyData, ReadyForQuery', () => {
    const types = welcome.slice(0, 16).map((m) => String.fromCharCode(m.type)).join('');
    expect(types).toBe('R' + 'S'.repeat(13) + 'KZ');
    expect(decodeAuthentication(welcome[0].body)).toEqual({ code: 0, data: Buffer.alloc(0) });
    const params = Object.fromEntries(welcome.filter((m) => m.type === BackendType.ParameterStatus).map((m) => {
      const p = decodeParameterStatus(m.body);
      return [p.name, p.value];
    }));
    expect(params).toMatchObject({
      application_name: 'tokengate-golden',
      client_encoding: 'UTF8',
      DateStyle: 'ISO, MDY',
      integer_datetimes: 'on',
      standard_conforming_strings: 'on',
      server_encoding: 'UTF8',
      session_authorization: 'postgres',
    });
    expect(params.server_version).toMatch(/^15\./);
  });

  test('re-encoded AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery equal the server bytes', () => {
    let compared = 0;
    for (const file of ['psql15-session.server.hex', 'node-postgres-extended.server.hex', 'psycopg2-startup.server.hex', 'psql15-cancel.server.hex']) {
      for (const m of serverMessages(file)) {
        let encoded: Buffer | undefined;
        if (m.type === BackendType.Authentication && decodeAuthentication(m.body).code === 0) encoded = authenticationOk();
        if (m.type === BackendType.ParameterStatus) {
          const p = decodeParameterStatus(m.body);
          encoded = parameterStatus(p.name, p.value);
        }
        if (m.type === BackendType.BackendKeyData) {
          const k = decodeBackendKeyData(m.body);
          encoded = backendKeyData(k.processId, k.secretKey);
        }
        if (m.type === BackendType.ReadyForQuery) encoded = readyForQuery(decodeReadyForQuery(m.body));
        if (encoded) {
          expect(encoded.toString('hex')).toBe(m.raw.toString('hex'));
          compared++;
        }
      }
    }
    expect(compared).toBeGreaterThan(60);
  });

  test('ErrorResponse from select 1/0 and NoticeResponse from RAISE NOTICE', () => {
    const error = welcome.find((m) => m.type === BackendType.ErrorResponse)!;
    expect(decodeErrorFields(error.body)).toEqual({
      severity: 'ERROR',
      severityNonLocalized: 'ERROR',
      code: '22012',
      message: 'division by zero',
      file: 'int.c',
      line: expect.stringMatching(/^\d+$/),
      routine: 'int4div',
    });
    const notice = welcome.find((m) => m.type === BackendType.NoticeResponse)!;
    expect(decodeErrorFields(notice.body)).toMatchObject({
      severity: 'NOTICE',
      code: '00000',
      message: 'golden notice',
      where: 'PL/pgSQL function inline_code_block line 1 at RAISE',
    });
  });

  test('CommandComplete tags and transaction status', () => {
    const tags = (file: string) => serverMessages(file).filter((m) => m.type === BackendType.CommandComplete).map((m) => decodeCommandComplete(m.body));
    expect(tags('psql15-session.server.hex')).toEqual(['DO', 'SELECT 1']);
    expect(tags('psycopg2-startup.server.hex')).toEqual(['BEGIN', 'SELECT 1']);
    const statuses = (file: string): TransactionStatus[] =>
      serverMessages(file).filter((m) => m.type === BackendType.ReadyForQuery).map((m) => decodeReadyForQuery(m.body));
    expect(statuses('psycopg2-startup.server.hex')).toEqual(['I', 'T', 'T']);
  });

  test('extended query responses: ParseComplete, BindComplete, RowDescription, DataRow, CommandComplete, ReadyForQuery', () => {
    const types = serverMessages('node-postgres-extended.server.hex').slice(16).map((m) => String.fromCharCode(m.type)).join('');
    expect(types).toBe('12TDCZ');
  });

  test('NegotiateProtocolVersion from PostgreSQL 15 equals our encoding', () => {
    const v = serverMessages('raw-negotiate-3.2.server.hex')[0];
    expect(v.type).toBe(BackendType.NegotiateProtocolVersion);
    expect(decodeNegotiateProtocolVersion(v.body)).toEqual({ major: 3, newestMinor: 0, unsupportedOptions: ['_pq_.tokengate_golden'] });
    expect(negotiateProtocolVersion(0, ['_pq_.tokengate_golden']).toString('hex')).toBe(v.raw.toString('hex'));
  });
});

test('every golden stream frames to the reference split', () => {
  for (const g of GOLDEN_STREAMS) {
    const bytes = goldenBytes(g);
    const ref = referenceSplit(g.side, bytes);
    const { frames, framer } = frameChunks(g.side, [bytes]);
    expect(frames.map((f) => [f.type, f.body.toString('hex')])).toEqual(ref.map((r) => [r.type, r.body.toString('hex')]));
    expect(framer.atBoundary).toBe(true);
  }
});
