/**
 * Golden vectors captured from the real MariaDB 10.11 server and real clients (see
 * test/golden/mysql/README.md): decode every connection-phase packet, and check the
 * ResponseTracker ends each response exactly where the server's next one starts.
 */
import {
  CLIENT_DEPRECATE_EOF,
  CLIENT_LONG_PASSWORD,
  CLIENT_MULTI_RESULTS,
  CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
  CLIENT_PROTOCOL_41,
  CLIENT_SESSION_TRACK,
  CLIENT_SSL,
  GATEWAY_CAPABILITIES,
  SERVER_SESSION_STATE_CHANGED,
  SERVER_STATUS_AUTOCOMMIT,
  decodeAuthSwitchRequest,
  decodeClearPassword,
  decodeErr,
  decodeHandshakeResponse41,
  decodeHandshakeV10,
  decodeOk,
  decodeSslRequest,
  encodeAuthSwitchRequest,
  encodeErr,
  encodeHandshakeV10,
  encodeOk,
  isErr,
  isOk,
  isSslRequest,
} from '../../../protocols/mysql';
import { Conversation, frameChunks, loadGolden, replayCommands } from './golden';

const MARIADB_VERSION = '5.5.5-10.11.19-MariaDB-0+deb12u1';

/** Login of a proxy capture: greeting, HandshakeResponse41, OK (each in its own chunk). */
function login(conv: Conversation) {
  const [greetingPacket] = frameChunks([conv.server[0]]);
  const greeting = decodeHandshakeV10(greetingPacket.payload);
  const [responsePacket] = frameChunks([conv.client[0]]);
  const response = decodeHandshakeResponse41(responsePacket.payload, greeting.capabilities);
  const [okPacket] = frameChunks([conv.server[1]]);
  const negotiated = (response.capabilities & greeting.capabilities) >>> 0;
  expect(isOk(okPacket.payload, negotiated)).toBe(true);
  return { greeting, response, negotiated, greetingPacket, responsePacket, ok: decodeOk(okPacket.payload, negotiated) };
}

function commandsAfterLogin(conv: Conversation, skipClientChunks: number) {
  return frameChunks(conv.client.slice(skipClientChunks));
}

describe('real MariaDB greeting', () => {
  it('decodes and re-encodes byte for byte', () => {
    const { greeting, greetingPacket } = login(loadGolden('mariadb-cli-session.hex'));
    expect(greeting.serverVersion).toBe(MARIADB_VERSION);
    expect(greeting.authPluginData).toHaveLength(20);
    expect(greeting.authPluginName).toBe('mysql_native_password');
    expect(greeting.capabilities & CLIENT_PROTOCOL_41).toBeTruthy();
    expect(greeting.capabilities & CLIENT_LONG_PASSWORD).toBe(0); // MariaDB: extended caps follow
    expect(greeting.mariadbCapabilities).toBeGreaterThan(0);
    expect(greeting.statusFlags & SERVER_STATUS_AUTOCOMMIT).toBeTruthy();
    expect(greetingPacket.sequenceId).toBe(0);
    expect(encodeHandshakeV10(greeting).equals(greetingPacket.payload)).toBe(true);
  });
});

describe('mariadb CLI session (real server)', () => {
  const conv = loadGolden('mariadb-cli-session.hex');
  it('decodes the HandshakeResponse41', () => {
    const { response, responsePacket, ok, negotiated } = login(conv);
    expect(responsePacket.sequenceId).toBe(1);
    expect(response.username).toBe('tg_codec');
    expect(response.database).toBe('test');
    expect(response.authPluginName).toBe('mysql_native_password');
    expect(response.authResponse).toHaveLength(20);
    expect(response.connectAttributes?._client_name).toBe('libmariadb');
    expect(response.capabilities & CLIENT_DEPRECATE_EOF).toBe(0);
    expect(response.mariadbCapabilities).toBe(0x1d);
    // The login OK reports the schema change through session tracking.
    expect(negotiated & CLIENT_SESSION_TRACK).toBeTruthy();
    expect(ok.statusFlags & SERVER_SESSION_STATE_CHANGED).toBeTruthy();
    expect(ok.sessionStateChanges?.toString('latin1')).toContain('test');
  });
  it('tracks a text result set, an UPDATE OK and an ERR', () => {
    const { negotiated } = login(conv);
    const { outcomes } = replayCommands(commandsAfterLogin(conv, 1), conv.server.slice(2), negotiated);
    expect(outcomes).toHaveLength(3);
    expect(outcomes[0].results).toEqual([expect.objectContaining({ kind: 'rows', columns: 2, rows: 3, binary: false })]);
    expect(outcomes[1].results[0]).toMatchObject({ kind: 'ok', affectedRows: 0n, info: 'Rows matched: 1  Changed: 0  Warnings: 0' });
    expect(outcomes[2].error).toEqual({ code: 1146, sqlState: '42S02', message: "Table 'test.no_such_table' doesn't exist" });
  });
});

describe('mysql2 session (real server)', () => {
  const conv = loadGolden('mysql2-session.hex');
  it('decodes the HandshakeResponse41 (LENENC set without matching format rules)', () => {
    const { response, greeting } = login(conv);
    expect(response.username).toBe('tg_codec');
    expect(response.database).toBe('test');
    expect(response.authResponse).toHaveLength(20);
    expect(response.capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA).toBeTruthy();
    expect(response.capabilities & CLIENT_DEPRECATE_EOF).toBe(0);
    expect(greeting.authPluginName).toBe('mysql_native_password');
  });
  it('tracks query, prepare, binary execute and a multi-result query', () => {
    const { negotiated } = login(conv);
    const { outcomes } = replayCommands(commandsAfterLogin(conv, 1), conv.server.slice(2), negotiated);
    expect(outcomes.map((o) => o.command)).toEqual([0x03, 0x16, 0x17, 0x03]);
    expect(outcomes[0].rows).toBe(3);
    expect(outcomes[1].results[0]).toMatchObject({ kind: 'prepared', params: 1, columns: 2, statementId: 1 });
    expect(outcomes[2].results[0]).toMatchObject({ kind: 'rows', binary: true, columns: 2, rows: 2 });
    expect(outcomes[3].results.map((r) => r.kind)).toEqual(['rows', 'ok', 'rows']);
    expect(outcomes[3].resultCount).toBe(3);
    expect(outcomes[3].rows).toBe(2);
    expect(negotiated & CLIENT_MULTI_RESULTS).toBeTruthy();
  });
});

describe('PyMySQL and MySQLdb sessions (real server)', () => {
  it('PyMySQL: handshake and two result sets in one COM_QUERY', () => {
    const conv = loadGolden('pymysql-session.hex');
    const { response, negotiated } = login(conv);
    expect(response.username).toBe('tg_codec');
    expect(response.database).toBe('test');
    expect(response.authResponse).toHaveLength(20);
    const { outcomes } = replayCommands(commandsAfterLogin(conv, 1), conv.server.slice(2), negotiated);
    expect(outcomes).toHaveLength(2); // SET AUTOCOMMIT = 0, then the multi-statement query
    expect(outcomes[1].results).toEqual([
      expect.objectContaining({ kind: 'rows', columns: 1, rows: 1 }),
      expect.objectContaining({ kind: 'rows', columns: 1, rows: 1 }),
    ]);
  });
  it('MySQLdb: handshake, SET autocommit OK with session tracking, a query', () => {
    const conv = loadGolden('mysqldb-session.hex');
    const { response, negotiated } = login(conv);
    expect(response.connectAttributes?._client_name).toBe('libmariadb');
    const { outcomes } = replayCommands(commandsAfterLogin(conv, 1), conv.server.slice(2), negotiated);
    expect(outcomes[0].results[0]).toMatchObject({ kind: 'ok' });
    expect(outcomes[0].statusFlags! & SERVER_SESSION_STATE_CHANGED).toBeTruthy();
    expect(outcomes[1].results[0]).toMatchObject({ kind: 'rows', columns: 1, rows: 1 });
  });
});

describe('DEPRECATE_EOF vs classic EOF (real server, scripted client)', () => {
  it('with CLIENT_DEPRECATE_EOF: OK terminators, multi-result, prepare without EOFs', () => {
    const conv = loadGolden('deprecate-eof-client.hex');
    const { negotiated } = login(conv);
    expect(negotiated & CLIENT_DEPRECATE_EOF).toBeTruthy();
    const { outcomes } = replayCommands(commandsAfterLogin(conv, 1), conv.server.slice(2), negotiated);
    expect(outcomes[0].results[0]).toMatchObject({ kind: 'rows', columns: 2, rows: 3 });
    expect(outcomes[1].results.map((r) => r.kind)).toEqual(['rows', 'ok', 'rows']);
    expect(outcomes[2].results[0]).toMatchObject({ kind: 'prepared', params: 2, columns: 2 });
  });
  it('without: prepare with EOF after params and columns, and an empty result set', () => {
    const conv = loadGolden('classic-eof-client.hex');
    const { negotiated } = login(conv);
    expect(negotiated & CLIENT_DEPRECATE_EOF).toBe(0);
    const { outcomes } = replayCommands(commandsAfterLogin(conv, 1), conv.server.slice(2), negotiated);
    expect(outcomes[0].results[0]).toMatchObject({ kind: 'prepared', params: 2, columns: 2 });
    expect(outcomes[1].results[0]).toMatchObject({ kind: 'rows', columns: 1, rows: 0 });
  });
});

describe('mysql_clear_password switch (real clients, codec greeting)', () => {
  const cases: Array<[string, string]> = [
    ['clear-mariadb-cli.hex', 'libmariadb'],
    ['clear-mysqldb.hex', 'libmariadb'],
    ['clear-pymysql.hex', 'pymysql'],
    ['clear-mysql2.hex', ''],
  ];
  it.each(cases)('%s: HandshakeResponse41, AuthSwitchRequest, clear reply', (file, clientName) => {
    const conv = loadGolden(file);
    const server = frameChunks(conv.server);
    const client = frameChunks(conv.client);
    const greeting = decodeHandshakeV10(server[0].payload);
    expect(greeting.capabilities).toBe((GATEWAY_CAPABILITIES & ~CLIENT_SSL) >>> 0);
    const response = decodeHandshakeResponse41(client[0].payload, greeting.capabilities);
    expect(response.username).toBe('tg_codec');
    expect(response.database).toBe('test');
    expect(response.authResponse).toHaveLength(20);
    if (clientName) expect(response.connectAttributes?._client_name).toBe(clientName);
    const sw = decodeAuthSwitchRequest(server[1].payload);
    expect(sw).toEqual({ pluginName: 'mysql_clear_password', pluginData: Buffer.alloc(0) });
    expect(server[1].payload.equals(encodeAuthSwitchRequest('mysql_clear_password', Buffer.alloc(0)))).toBe(true);
    expect(client[1].sequenceId).toBe(3);
    expect(decodeClearPassword(client[1].payload)).toBe('codec-pass');
    expect(server[2].payload.equals(encodeOk({ statusFlags: SERVER_STATUS_AUTOCOMMIT }, GATEWAY_CAPABILITIES))).toBe(true);
    const err = server[3].payload;
    expect(isErr(err)).toBe(true);
    expect(decodeErr(err)).toEqual({ code: 1047, sqlState: '08S01', message: 'capture server: no commands' });
    expect(err.equals(encodeErr({ code: 1047, sqlState: '08S01', message: 'capture server: no commands' }))).toBe(true);
  });
  it('mysql2 without enableCleartextPlugin sends its HandshakeResponse41 and no reply', () => {
    const conv = loadGolden('clear-mysql2-disabled.hex');
    const client = frameChunks(conv.client);
    expect(client).toHaveLength(1);
    const r = decodeHandshakeResponse41(client[0].payload, GATEWAY_CAPABILITIES);
    expect(r.authPluginName).toBe('mysql_native_password');
  });
});

describe('SSLRequest (real clients, codec greeting with CLIENT_SSL)', () => {
  it.each(['sslrequest-mariadb-cli.hex', 'sslrequest-mysql2.hex'])('%s', (file) => {
    const conv = loadGolden(file);
    const [req] = frameChunks(conv.client);
    expect(req.sequenceId).toBe(1);
    expect(isSslRequest(req.payload)).toBe(true);
    const ssl = decodeSslRequest(req.payload);
    expect(ssl.capabilities & CLIENT_SSL).toBeTruthy();
    expect(ssl.characterSet).toBeGreaterThan(0);
    // A HandshakeResponse41 is never mistaken for one.
    const clear = frameChunks(loadGolden('clear-mysql2.hex').client)[0];
    expect(isSslRequest(clear.payload)).toBe(false);
  });
});
