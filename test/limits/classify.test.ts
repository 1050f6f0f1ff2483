import { classifyUpstreamFailure } from '../../src/core/upstreamFailure';
import { MysqlLoginError } from '../../src/mysql/login';
import { statementTimeoutSql } from '../../src/mysql/clientSession';
import { UpstreamLoginError } from '../../src/postgres/login';

describe('upstream login failures', () => {
  test.each(['28P01', '28000', '3D000', '42501'])('PostgreSQL %s refuses the gateway\'s login: a configuration error', (code) => {
    expect(classifyUpstreamFailure(new UpstreamLoginError('refused', code))).toBe('login_refused');
  });
  test.each([1045, 1044, 1049, 1698])('MySQL %s refuses the gateway\'s login: a configuration error', (code) => {
    expect(classifyUpstreamFailure(new MysqlLoginError('refused', code, '28000'))).toBe('login_refused');
  });
  test('too many connections, a server starting up, a refused or timed-out connection: unavailable, retry', () => {
    expect(classifyUpstreamFailure(new UpstreamLoginError('full', '53300'))).toBe('unavailable');
    expect(classifyUpstreamFailure(new UpstreamLoginError('starting', '57P03'))).toBe('unavailable');
    expect(classifyUpstreamFailure(new MysqlLoginError('full', 1040, '08004'))).toBe('unavailable');
    expect(classifyUpstreamFailure(new UpstreamLoginError('connect ECONNREFUSED 127.0.0.1:1'))).toBe('unavailable');
    expect(classifyUpstreamFailure(Object.assign(new Error('getaddrinfo ENOTFOUND db'), { code: 'ENOTFOUND' }))).toBe('unavailable');
  });
});

test("a grant's statement timeout: MariaDB max_statement_time in seconds, MySQL max_execution_time in milliseconds", () => {
  expect(statementTimeoutSql('10.11.6-MariaDB-0+deb12u1', 1500)).toBe('SET SESSION max_statement_time = 1.5');
  expect(statementTimeoutSql('5.5.5-10.11.6-MariaDB', 300000)).toBe('SET SESSION max_statement_time = 300');
  expect(statementTimeoutSql('8.0.36', 1500)).toBe('SET SESSION max_execution_time = 1500');
});
