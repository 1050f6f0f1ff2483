import { SignJWT, jwtVerify, generateKeyPair } from 'jose';

test('jose loads under jest and round-trips an RS256 token', async () => {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwt = await new SignJWT({ scp: ['db.connect'] }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('5m').sign(privateKey);
  const { payload } = await jwtVerify(jwt, publicKey, { algorithms: ['RS256'] });
  expect(payload.scp).toEqual(['db.connect']);
});
