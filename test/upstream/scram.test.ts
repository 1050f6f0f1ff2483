import { createHash } from 'node:crypto';
import { pbkdf2Sync } from 'node:crypto';
import { ScramError, ScramSha256Client, saslPrep } from '../../protocols/postgres/scram';
import { md5Password } from '../../protocols/postgres/md5';

// RFC 7677 section 3: user "user", password "pencil".
const NONCE = 'rOprNGfwEbeRWgbNEkqO';
const SERVER_FIRST = 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';
const CLIENT_FINAL = 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';
const SERVER_FINAL = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=';

function rfcClient(): { c: ScramSha256Client; salted: Buffer } {
  const c = new ScramSha256Client({ nonce: NONCE, username: 'user' });
  expect(c.clientFirstMessage()).toBe(`n,,n=user,r=${NONCE}`);
  const { salt, iterations } = c.receiveServerFirst(SERVER_FIRST);
  return { c, salted: pbkdf2Sync('pencil', salt, iterations, 32, 'sha256') };
}

describe('ScramSha256Client', () => {
  test('reproduces the RFC 7677 test vector', () => {
    const { c, salted } = rfcClient();
    expect(c.clientFinalMessage(salted)).toBe(CLIENT_FINAL);
    expect(c.completed).toBe(false);
    c.receiveServerFinal(SERVER_FINAL);
    expect(c.completed).toBe(true);
  });

  test('default first message uses n=* and a random printable nonce', () => {
    const a = new ScramSha256Client().clientFirstMessage();
    const b = new ScramSha256Client().clientFirstMessage();
    expect(a).toMatch(/^n,,n=\*,r=[A-Za-z0-9+/=]{24}$/);
    expect(a).not.toBe(b);
  });

  test('rejects a wrong server signature', () => {
    const { c, salted } = rfcClient();
    c.clientFinalMessage(salted);
    expect(() => c.receiveServerFinal('v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')).toThrow(/signature does not match/);
    expect(c.completed).toBe(false);
  });

  test('a server error e=... is reported', () => {
    const { c, salted } = rfcClient();
    c.clientFinalMessage(salted);
    expect(() => c.receiveServerFinal('e=invalid-proof')).toThrow(new ScramError('The server rejected SCRAM authentication: invalid-proof.'));
  });

  test.each([
    ['nonce not extending ours', 'r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096', /nonce/],
    ['nonce equal to ours', `r=${NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`, /nonce/],
    ['bad base64 salt', `r=${NONCE}x,s=@@@,i=4096`, /base64/],
    ['empty salt', `r=${NONCE}x,s=,i=4096`, /base64/],
    ['zero iterations', `r=${NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0`, /outside/],
    ['huge iterations', `r=${NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999`, /iteration/],
    ['too many iterations', `r=${NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000001`, /outside/],
    ['missing attributes', `r=${NONCE}x`, /Malformed/],
    ['mandatory extension', `m=ext,r=${NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`, /extension/],
    ['garbage', 'hello world', /Malformed/],
    ['oversized', 'r=' + 'a'.repeat(10000), /longer than/],
  ])('rejects server-first with %s', (_name, msg, err) => {
    const c = new ScramSha256Client({ nonce: NONCE });
    c.clientFirstMessage();
    expect(() => c.receiveServerFirst(msg)).toThrow(err);
  });

  test('steps out of order throw', () => {
    const c = new ScramSha256Client({ nonce: NONCE });
    expect(() => c.receiveServerFirst(SERVER_FIRST)).toThrow(ScramError);
    expect(() => c.clientFinalMessage(Buffer.alloc(32))).toThrow(ScramError);
  });

  test('saslPrep keeps ASCII and maps non-ASCII spaces', () => {
    expect(saslPrep('pencil')).toBe('pencil');
    expect(saslPrep('a\u00a0b\u00adc')).toBe('a bc');
    expect(saslPrep('\u2168')).toBe('IX');
  });
});

describe('md5Password', () => {
  test("is 'md5' + md5(md5(password + user) + salt)", () => {
    const salt = Buffer.from([1, 2, 3, 4]);
    const inner = createHash('md5').update('secretalice').digest('hex');
    const want = 'md5' + createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
    expect(md5Password('alice', 'secret', salt)).toBe(want);
    expect(() => md5Password('a', 'b', Buffer.alloc(3))).toThrow(RangeError);
  });
});
