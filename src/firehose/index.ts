// Public entry of the outbound firehose (subscribeRepos over WebSocket).
export type { ConsumerInfo, ConsumerState } from './consumer.ts';
export { type FirehoseOptions, FirehoseServer, parseCursor, SUBSCRIBE_REPOS_PATH } from './server.ts';
