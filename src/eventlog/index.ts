// Public entry of the event log: the interface the relay codes against and
// the embedded file implementation behind `openEventLog`.
export { FileEventLog, type FileEventLogOptions, openEventLog } from './file-log.ts';
export type { AppendEvent, DurableListener, EventLog, LogRecord, ReadOptions, Sequencer } from './types.ts';
export { EventKind } from './types.ts';
