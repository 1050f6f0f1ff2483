import type { Command } from 'commander';
import { parseDocument } from 'yaml';
import { parseDuration } from '../config/duration';
import { resolveConfigPath } from '../config/load';
import { quoteEnvReferences } from '../config/envRefs';
import {
  parsePrivateKey,
  readSmallFile,
  requestClientCredentialsToken,
  TokenFileCache,
  tokenCacheKey,
  tokenEndpointFor,
  type ClientAuth,
  type ClientCredentialsRequest,
} from './clientCredentials';
import { readDemoState, type DemoClientState } from '../dev/demo/stateFile';

/**
 * `tokengate token`: a client-credentials access token on stdout and nothing else, so that
 * PGPASSWORD="$(tokengate token ...)" works. Problems go to stderr; secrets go nowhere.
 */

interface TokenOptions {
  issuer?: string;
  config?: string;
  tokenEndpoint?: string;
  clientId?: string;
  client?: string;
  clientSecret?: string;
  clientSecretFile?: string;
  auth: string;
  privateKey?: string;
  keyId?: string;
  scope: string[];
  audience?: string;
  resource?: string;
  cache?: string;
  demo?: boolean;
  expired?: boolean;
  timeout: string;
}

/** A mistake in the command line: exit 2, like the other commands' usage errors. */
class UsageError extends Error {}

const collect = (value: string, previous: string[]): string[] => [...previous, ...value.split(/[\s,]+/).filter(Boolean)];

/** The issuer from --issuer, else oidc.issuer of the gateway config (read without resolving its secrets). */
function issuerFrom(o: TokenOptions): string {
  if (o.issuer) return o.issuer;
  let path: string;
  try {
    path = resolveConfigPath(o.config);
  } catch {
    throw new UsageError('no issuer: pass --issuer https://{yourOktaDomain}/oauth2/{authServerId}, or --config with a tokengate.yaml that sets oidc.issuer (or --demo for the running demo)');
  }
  const doc = parseDocument(quoteEnvReferences(readSmallFile(path, 'config file', 1024 * 1024)));
  // YAML errors quote the offending line, which could hold a secret: name the file only.
  if (doc.errors.length > 0) throw new UsageError(`${path} is not valid YAML; run tokengate check-config --config ${path}, or pass --issuer`);
  const issuer = doc.getIn(['oidc', 'issuer']);
  if (typeof issuer !== 'string' || issuer === '') throw new UsageError(`${path} has no oidc.issuer; pass --issuer instead`);
  return issuer;
}

function clientSecret(o: TokenOptions): string {
  const given = [o.clientSecret !== undefined && '--client-secret', o.clientSecretFile !== undefined && '--client-secret-file'].filter(Boolean);
  if (given.length > 1) throw new UsageError('give the secret once: --client-secret or --client-secret-file');
  if (o.clientSecretFile !== undefined) {
    const secret = readSmallFile(o.clientSecretFile, 'client secret file').replace(/[\r\n]+$/, '');
    if (secret === '') throw new UsageError(`the client secret file ${o.clientSecretFile} is empty`);
    return secret;
  }
  const secret = o.clientSecret ?? process.env.TOKENGATE_CLIENT_SECRET;
  if (!secret) {
    throw new UsageError('no client credentials: use --client-secret-file FILE or the TOKENGATE_CLIENT_SECRET environment variable (client_secret_basic/post), or --private-key FILE (private_key_jwt)');
  }
  return secret;
}

function clientAuth(o: TokenOptions): ClientAuth {
  if (o.privateKey !== undefined) {
    if (o.clientSecret !== undefined || o.clientSecretFile !== undefined) throw new UsageError('use either --private-key (private_key_jwt) or a client secret, not both');
    try {
      return { method: 'private_key_jwt', key: parsePrivateKey(readSmallFile(o.privateKey, 'private key file'), o.privateKey, o.keyId) };
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  if (o.keyId !== undefined) throw new UsageError('--key-id goes with --private-key');
  return { method: o.auth === 'post' ? 'client_secret_post' : 'client_secret_basic', clientSecret: clientSecret(o) };
}

function timeoutMs(o: TokenOptions): number {
  try {
    return parseDuration(o.timeout);
  } catch (err) {
    throw new UsageError(`--timeout: ${(err as Error).message}`);
  }
}

/** A demo client's credentials: its development secret, or (svc-agent) its private key for private_key_jwt. */
function demoClientAuth(o: TokenOptions, client: DemoClientState): ClientAuth {
  if (client.clientSecret !== undefined) return { method: o.auth === 'post' ? 'client_secret_post' : 'client_secret_basic', clientSecret: client.clientSecret };
  if (client.privateKeyFile === undefined) throw new UsageError(`the demo client ${client.clientId} has no credentials in the demo state; restart the demo`);
  try {
    return { method: 'private_key_jwt', key: parsePrivateKey(readSmallFile(client.privateKeyFile, 'private key file'), client.privateKeyFile, client.keyId) };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The request for the running demo: its issuer, and a demo client's development credentials. */
function demoRequest(o: TokenOptions, clientId: string | undefined, base: Pick<ClientCredentialsRequest, 'scopes' | 'extraParams' | 'timeoutMs'>): ClientCredentialsRequest {
  const extra = ['issuer', 'config', 'tokenEndpoint', 'clientSecret', 'clientSecretFile', 'privateKey', 'keyId', 'cache'] as const;
  const clash = extra.filter((k) => o[k] !== undefined);
  if (clash.length > 0) throw new UsageError(`--demo takes the issuer and the client secret from the running demo; drop ${clash.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')}`);
  const state = readDemoState();
  const client = clientId === undefined ? state.clients[0] : state.clients.find((c) => c.clientId === clientId);
  if (!client) throw new UsageError(`the demo has no client ${JSON.stringify(clientId)}; its clients are ${state.clients.map((c) => c.clientId).join(', ')}`);
  return {
    ...base,
    tokenEndpoint: o.expired ? state.expiredTokenEndpoint : state.tokenEndpoint,
    clientId: client.clientId,
    auth: demoClientAuth(o, client),
  };
}

async function fetchToken(o: TokenOptions): Promise<string> {
  if (o.clientId !== undefined && o.client !== undefined && o.clientId !== o.client) throw new UsageError('--client and --client-id name different clients; give one');
  const clientId = o.clientId ?? o.client;
  if (o.expired && !o.demo) throw new UsageError('--expired works only with --demo (the demo issuer can mint an expired token; a real one will not)');
  if (o.auth !== 'basic' && o.auth !== 'post') throw new UsageError(`--auth must be basic (client_secret_basic, the default) or post (client_secret_post), got ${JSON.stringify(o.auth)}`);
  const extraParams: Record<string, string> = {};
  if (o.audience !== undefined) extraParams.audience = o.audience;
  if (o.resource !== undefined) extraParams.resource = o.resource;
  const base = { scopes: o.scope, extraParams, timeoutMs: timeoutMs(o) };
  if (o.demo) return (await requestClientCredentialsToken(demoRequest(o, clientId, base))).accessToken;

  if (!clientId) throw new UsageError('--client-id is required: the Okta app\'s client id (e.g. 0oa1b2c3d4e5f6g7h8i9)');
  const auth = clientAuth(o);
  const tokenEndpoint = o.tokenEndpoint ?? (await tokenEndpointFor(issuerFrom(o), base.timeoutMs));
  const request: ClientCredentialsRequest = { ...base, tokenEndpoint, clientId, auth };
  if (!o.cache) return (await requestClientCredentialsToken(request)).accessToken;

  const cache = new TokenFileCache(o.cache, 60, (msg) => process.stderr.write(`tokengate token: ${msg}\n`));
  const key = tokenCacheKey(request);
  const cached = cache.read(key);
  if (cached) return cached;
  const issued = await requestClientCredentialsToken(request);
  try {
    cache.write(key, issued);
  } catch (err) {
    // The token is good; only reuse is lost.
    process.stderr.write(`tokengate token: ${(err as Error).message}\n`);
  }
  return issued.accessToken;
}

export function registerToken(program: Command): void {
  program
    .command('token')
    .description('get an access token with the client credentials grant and print only the token (for PGPASSWORD="$(tokengate token ...)")')
    .option('--issuer <url>', 'the authorization server, e.g. https://acme.okta.com/oauth2/default (default: oidc.issuer of --config)')
    .option('-c, --config <path>', 'take the issuer from this tokengate.yaml (default ./tokengate.yaml, then /etc/tokengate/tokengate.yaml)')
    .option('--token-endpoint <url>', 'skip discovery and use this token endpoint')
    .option('--client-id <id>', "the app's client id")
    .option('--client <id>', 'same as --client-id (with --demo: svc-reporting, svc-billing, or svc-agent, which uses private_key_jwt)')
    .option('--client-secret <secret>', 'the client secret (visible to other local users in the process list: prefer --client-secret-file or TOKENGATE_CLIENT_SECRET)')
    .option('--client-secret-file <path>', 'read the client secret from this file')
    .option('--auth <method>', 'how to send the secret: basic (client_secret_basic) or post (client_secret_post)', 'basic')
    .option('--private-key <path>', 'private_key_jwt: sign a client assertion with this private key (PEM or JWK)')
    .option('--key-id <kid>', 'the kid to put in the assertion header (default: the JWK\'s kid)')
    .option('--scope <scope>', 'a scope to request (repeatable; e.g. db.connect)', collect, [])
    .option('--audience <aud>', 'send audience=AUD (IdPs that pick the audience per request; Okta does not; the demo issuer does, to show a wrong-audience refusal)')
    .option('--resource <uri>', 'send resource=URI (RFC 8707 resource indicator)')
    .option('--cache <path>', 'keep the token in this file (mode 600) and reuse it until 60 s before it expires')
    .option('--timeout <duration>', 'HTTP timeout for discovery and the token request', '10s')
    .option('--demo', 'use the running `tokengate demo`: its issuer and its demo clients')
    .option('--expired', 'with --demo: get an already expired token, to see the gateway refuse it')
    .action(async (o: TokenOptions) => {
      try {
        const token = await fetchToken(o);
        process.stdout.write(`${token}\n`);
      } catch (err) {
        process.stderr.write(`tokengate token: ${(err as Error).message}\n`);
        process.exitCode = err instanceof UsageError ? 2 : 1;
      }
    });
}
