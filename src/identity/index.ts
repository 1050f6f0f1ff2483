export { TokenVerifier, type TokenReport, type TokenVerifierOptions } from './verifier';
export { discoverIssuer, DiscoveryError, type IssuerMetadata } from './discovery';
export { IssuerKeys, IdpUnavailableError } from './keys';
export { requireSecureUrl, isLoopbackHost, InsecureUrlError } from './secureUrl';
export { TokenCache, tokenDigest } from './tokenCache';
export { MAX_ACCESS_TOKEN_BYTES, tokenTooLargeMessage } from './tokenSize';
export { TokenRejectedError, type Identity, type TokenRejectReason } from './types';
