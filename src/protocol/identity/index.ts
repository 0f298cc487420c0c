// The identity layer in one import: SSRF-safe fetching, DID document
// parsing, DID and handle resolution, and the bounded identity cache. Each
// piece lives in its own module; this file only re-exports them.
export * from './concurrency-limiter.ts';
export * from './did-document.ts';
export * from './did-resolver.ts';
export * from './handle-resolver.ts';
export * from './identity-cache.ts';
export * from './ip-policy.ts';
export * from './safe-fetch.ts';
