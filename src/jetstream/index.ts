// Public entry of the Jetstream-compatible JSON stream (`GET /subscribe`; docs/jetstream.md).
export { type EncodedEvent, encodeEvent, type JetstreamMessage } from './encode.ts';
export { FilterError, parseOptionsUpdate, parseSubscribeQuery, SubscriberFilter } from './filter.ts';
export { JETSTREAM_PATH, type JetstreamOptions, JetstreamServer } from './server.ts';
export type { SubscriberInfo, SubscriberState } from './subscriber.ts';
