// Public entry of the event log: the interface the relay codes against, the
// embedded file implementation behind `openEventLog` and the shared JetStream
// one behind `openNatsEventLog` (docs/scale-out.md).
export { FileEventLog, type FileEventLogOptions, openEventLog } from './file-log.ts';
export { NatsEventLog, type NatsEventLogOptions, openNatsEventLog } from './nats-log.ts';
export type { AppendEvent, DurableListener, EventLog, LogRecord, ReadOptions, Sequencer } from './types.ts';
export { EventKind } from './types.ts';
