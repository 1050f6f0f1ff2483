export { TokenVerifier, type TokenReport, type TokenVerifierOptions } from './verifier';
export { discoverIssuer, DiscoveryError, type IssuerMetadata } from './discovery';
export { IssuerKeys, IdpUnavailableError } from './keys';
export { requireSecureUrl, isLoopbackHost, InsecureUrlError } from './secureUrl';
export { TokenCache, tokenDigest } from './tokenCache';
export { MAX_TOKEN_BYTES } from './compactJws';
export { TokenRejectedError, type Identity, type TokenRejectReason } from './types';
