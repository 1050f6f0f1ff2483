/**
 * The largest password the gateway treats as an access token. Okta's access tokens are 1-2 KiB
 * (a few KiB with many groups); anything larger is refused where the password arrives, in
 * each protocol, before it is parsed, hashed or its signature checked.
 */
export const MAX_ACCESS_TOKEN_BYTES = 16 * 1024;

/** The agent-facing refusal for an oversized password; `bytes` is how much was announced or received. */
export function tokenTooLargeMessage(bytes: number): string {
  return `the password is ${bytes} bytes, too large for an access token (at most ${MAX_ACCESS_TOKEN_BYTES} bytes are accepted); put an access token from your issuer in the password field`;
}
